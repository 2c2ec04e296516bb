// GUID Partition Table (UEFI spec 2.10, ch. 5): protective MBR at LBA 0, header at LBA 1, 128 entries of
// 128 bytes from LBA 2, and the backup entries and header at the end of the disk.
import { crc32 } from 'node:zlib';
import { CloudletsError } from '../../errors.js';
import { guidToGptBytes } from './guid.js';

export const SECTOR = 512;
const ENTRY_COUNT = 128;
const ENTRY_SIZE = 128;
/** Sectors the entry array occupies: 128 × 128 bytes = 32 sectors. */
const ENTRY_SECTORS = (ENTRY_COUNT * ENTRY_SIZE) / SECTOR;
/** Protective MBR + header + entries. */
export const GPT_HEAD_SECTORS = 2 + ENTRY_SECTORS;
/** Backup entries + backup header. */
export const GPT_TAIL_SECTORS = 1 + ENTRY_SECTORS;

export const GPT_TYPE = {
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linuxFilesystem: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
  /** Discoverable Partitions Specification: root partition for x86-64. */
  linuxRootX86_64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
} as const;

export interface GptPartition {
  /** Partition type GUID (text form). */
  type: string;
  /** Unique partition GUID (text form). */
  guid: string;
  /** First sector, inclusive. */
  firstLba: number;
  /** Last sector, inclusive. */
  lastLba: number;
  /** Up to 36 UTF-16 code units. */
  name: string;
  /** Attribute bits (bit 0 required, bit 2 legacy BIOS bootable...); default 0. */
  attributes?: bigint;
}

export interface GptOptions {
  /** Disk size in bytes, a multiple of 512. */
  diskSize: number;
  diskGuid: string;
  partitions: GptPartition[];
  /** The first 440 bytes of the protective MBR: boot code (GRUB's boot.img for BIOS boot); zeros if absent. */
  bootCode?: Buffer;
}

export interface GptImage {
  /** Bytes for offset 0: protective MBR, primary header, primary entries. */
  head: Buffer;
  /** Bytes for `tailOffset`: backup entries, backup header (the last sector of the disk). */
  tail: Buffer;
  tailOffset: number;
  /** First and last sectors partitions may use. */
  firstUsableLba: number;
  lastUsableLba: number;
}

/** The usable sector range of a GPT disk of this size, for laying out partitions before writing. */
export function gptUsableRange(diskSize: number): { first: number; last: number } {
  const sectors = Math.floor(diskSize / SECTOR);
  return { first: GPT_HEAD_SECTORS, last: sectors - GPT_TAIL_SECTORS - 1 };
}

export function buildGpt(opts: GptOptions): GptImage {
  if (opts.diskSize % SECTOR !== 0)
    throw new Error(`GPT: disk size ${opts.diskSize} is not a multiple of 512`);
  const sectors = opts.diskSize / SECTOR;
  const { first, last } = gptUsableRange(opts.diskSize);
  if (opts.partitions.length > ENTRY_COUNT) throw new Error('GPT: more than 128 partitions');

  const entries = Buffer.alloc(ENTRY_COUNT * ENTRY_SIZE);
  const sorted = [...opts.partitions].sort((a, b) => a.firstLba - b.firstLba);
  sorted.forEach((p, i) => {
    if (p.firstLba < first || p.lastLba > last || p.lastLba < p.firstLba) {
      throw new CloudletsError(
        'EUSAGE',
        `partition ${p.name} (${p.firstLba}-${p.lastLba}) is outside the disk`,
      );
    }
    const prev = sorted[i - 1];
    if (prev && prev.lastLba >= p.firstLba)
      throw new Error(`GPT: partitions ${prev.name} and ${p.name} overlap`);
  });
  opts.partitions.forEach((p, i) => {
    const e = entries.subarray(i * ENTRY_SIZE, (i + 1) * ENTRY_SIZE);
    guidToGptBytes(p.type).copy(e, 0);
    guidToGptBytes(p.guid).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.firstLba), 32);
    e.writeBigUInt64LE(BigInt(p.lastLba), 40);
    e.writeBigUInt64LE(p.attributes ?? 0n, 48);
    const name = Buffer.from(p.name, 'utf16le');
    if (name.length > 72) throw new Error(`GPT: partition name too long: ${p.name}`);
    name.copy(e, 56);
  });
  const entriesCrc = crc32(entries);

  const header = (myLba: number, altLba: number, entriesLba: number): Buffer => {
    const h = Buffer.alloc(SECTOR);
    h.write('EFI PART', 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(myLba), 24);
    h.writeBigUInt64LE(BigInt(altLba), 32);
    h.writeBigUInt64LE(BigInt(first), 40);
    h.writeBigUInt64LE(BigInt(last), 48);
    guidToGptBytes(opts.diskGuid).copy(h, 56);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(ENTRY_COUNT, 80);
    h.writeUInt32LE(ENTRY_SIZE, 84);
    h.writeUInt32LE(entriesCrc, 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
    return h;
  };

  const head = Buffer.alloc(GPT_HEAD_SECTORS * SECTOR);
  protectiveMbr(sectors, opts.bootCode).copy(head, 0);
  header(1, sectors - 1, 2).copy(head, SECTOR);
  entries.copy(head, 2 * SECTOR);

  const tail = Buffer.alloc(GPT_TAIL_SECTORS * SECTOR);
  entries.copy(tail, 0);
  header(sectors - 1, 1, sectors - GPT_TAIL_SECTORS).copy(tail, ENTRY_SECTORS * SECTOR);
  return {
    head,
    tail,
    tailOffset: (sectors - GPT_TAIL_SECTORS) * SECTOR,
    firstUsableLba: first,
    lastUsableLba: last,
  };
}

/** One partition of type 0xEE covering the disk (or 2 TiB of it), so MBR-only tools leave the disk alone. */
function protectiveMbr(sectors: number, bootCode: Buffer | undefined): Buffer {
  const mbr = Buffer.alloc(SECTOR);
  bootCode?.copy(mbr, 0, 0, Math.min(440, bootCode.length));
  const p = mbr.subarray(446, 462);
  p[0] = 0x00;
  p.set([0x00, 0x02, 0x00], 1); // CHS of LBA 1
  p[4] = 0xee;
  p.set([0xff, 0xff, 0xff], 5);
  p.writeUInt32LE(1, 8);
  p.writeUInt32LE(Math.min(sectors - 1, 0xffffffff), 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}
