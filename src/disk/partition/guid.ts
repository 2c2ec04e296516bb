import { createHash } from 'node:crypto';
import { CloudletsError } from '../../errors.js';

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A GUID/UUID derived from a seed and a role ("disk", "esp", "root-fs"...): SHA-256 of both, shaped as an
 * RFC 4122 version 4 UUID so tools that check the version bits accept it. Same seed, same UUID: this is
 * how reproducible builds get stable identifiers.
 */
export function deriveUuid(seed: string, role: string): string {
  const b = createHash('sha256').update(seed).update('\0').update(role).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return formatUuid(b);
}

/** Text form of 16 bytes taken in order (the way ext4 and the kernel print a filesystem UUID). */
export function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** Bytes of a UUID in text order (ext4 superblock, MBR-less uses). */
export function uuidBytes(uuid: string): Buffer {
  if (!GUID_RE.test(uuid)) throw new CloudletsError('EUSAGE', `not a UUID: ${uuid}`);
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

/**
 * The on-disk GPT encoding: the first three fields little-endian, the last two as written (UEFI spec,
 * "EFI_GUID"). sgdisk and the kernel print it back in text order.
 */
export function guidToGptBytes(guid: string): Buffer {
  const b = uuidBytes(guid);
  const out = Buffer.alloc(16);
  out.writeUInt32LE(b.readUInt32BE(0), 0);
  out.writeUInt16LE(b.readUInt16BE(4), 4);
  out.writeUInt16LE(b.readUInt16BE(6), 6);
  b.copy(out, 8, 8, 16);
  return out;
}
