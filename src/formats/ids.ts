// Identifiers the containers carry (VMDK CID, VHD/VDI/VHDX UUIDs), derived from the build's seed so a
// reproducible build writes the same bytes twice.
import { createHash } from 'node:crypto';

/** `length` bytes from SHA-256(seed, role). */
export function seedBytes(seed: string, role: string, length = 16): Buffer {
  return createHash('sha256').update(seed).update('\0').update(role).digest().subarray(0, length);
}

/** 16 bytes shaped as an RFC 4122 version 4 UUID (in text byte order), so tools checking the bits accept it. */
export function seedUuid(seed: string, role: string): Buffer {
  const b = Buffer.from(seedBytes(seed, role));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}

/**
 * The Microsoft GUID encoding of a text-order UUID: the first three fields little-endian (VHDX, VDI
 * as VirtualBox writes RTUUID).
 */
export function guidLE(text: Buffer): Buffer {
  const out = Buffer.from(text);
  out.writeUInt32LE(text.readUInt32BE(0), 0);
  out.writeUInt16LE(text.readUInt16BE(4), 4);
  out.writeUInt16LE(text.readUInt16BE(6), 6);
  return out;
}

/** A GUID constant given in text form, encoded the Microsoft way. */
export function guidConst(text: string): Buffer {
  return guidLE(Buffer.from(text.replace(/-/g, ''), 'hex'));
}
