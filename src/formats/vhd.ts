// Microsoft VHD (Virtual Hard Disk Image Format Specification 1.0): fixed (the disk's bytes, then a
// 512-byte footer) or dynamic (a footer copy, the dynamic header, the block allocation table, 2 MiB
// blocks each preceded by its sector bitmap, the footer at the end).
import { CloudletsError } from '../errors.js';
import { containerTarget } from './container.js';
import { checkWrite, openOutputFile, roundUp } from './file.js';
import { seedUuid } from './ids.js';
import type { DiskTarget, DiskTargetOptions } from './index.js';
import { sparseBlocks } from './sparse.js';

const MIB = 1024 * 1024;
const BLOCK = 2 * MIB;
const BITMAP = 512; // one bit per sector of a 2 MiB block
const DYNAMIC_HEADER = 1024;
const BAT_OFFSET = 512 + DYNAMIC_HEADER;
const VHD_EPOCH = 946684800; // 2000-01-01T00:00:00Z
const TYPE_FIXED = 2;
const TYPE_DYNAMIC = 3;

/**
 * CHS geometry by the algorithm in the VHD specification's appendix (rounding down: the geometry never
 * covers more than the disk). qemu-img instead grows the size until the geometry covers it, one cylinder
 * more; the exact size is in the footer's current size either way.
 */
export function vhdGeometry(size: number): { cylinders: number; heads: number; sectors: number } {
  let total = Math.floor(size / 512);
  if (total > 65535 * 16 * 255) total = 65535 * 16 * 255;
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectors: spt };
}

/** The 512-byte hard disk footer. */
export function vhdFooter(o: {
  size: number;
  type: number;
  dataOffset: bigint;
  timestamp: number;
  uuid: Buffer;
}): Buffer {
  const f = Buffer.alloc(512);
  f.write('conectix', 0, 'latin1');
  f.writeUInt32BE(2, 8); // features: the "reserved" bit the spec says is always set
  f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(o.dataOffset, 16);
  f.writeUInt32BE(Math.max(0, Math.min(0xffffffff, o.timestamp - VHD_EPOCH)), 24);
  // Creator application: QEMU sizes a VHD by its CHS geometry (rounding it down) unless the creator is
  // one it knows to mean "current size is exact"; 'qem2' is QEMU's own such marker. Hyper-V and Azure
  // use the current size whatever the creator.
  f.write('qem2', 28, 'latin1');
  f.writeUInt32BE(0x00010000, 32); // creator version
  f.write('Wi2k', 36, 'latin1'); // creator host OS
  f.writeBigUInt64BE(BigInt(o.size), 40); // original size
  f.writeBigUInt64BE(BigInt(o.size), 48); // current size
  const g = vhdGeometry(o.size);
  f.writeUInt16BE(g.cylinders, 56);
  f.writeUInt8(g.heads, 58);
  f.writeUInt8(g.sectors, 59);
  f.writeUInt32BE(o.type, 60);
  o.uuid.copy(f, 68);
  f.writeUInt32BE(onesComplementSum(f), 64);
  return f;
}

/** The spec's checksum: the one's complement of the byte sum, taken with the checksum field zero. */
function onesComplementSum(b: Buffer): number {
  let sum = 0;
  for (const byte of b) sum += byte;
  return ~sum >>> 0;
}

export async function openVhdTarget(
  path: string,
  size: number,
  opts: DiskTargetOptions,
): Promise<DiskTarget> {
  const subformat = opts.subformat ?? 'fixed';
  if (subformat === 'fixed' && size % MIB !== 0) {
    throw new CloudletsError(
      'EUSAGE',
      `a fixed VHD's virtual size must be a whole number of MiB (Azure and Hyper-V reject others); got ${size} bytes`,
      { where: '--size', hint: `use ${Math.ceil(size / MIB)}M` },
    );
  }
  const footer = (type: number, dataOffset: bigint) =>
    vhdFooter({ size, type, dataOffset, timestamp: opts.timestamp, uuid: seedUuid(opts.seed, 'vhd-uuid') });
  const file = await openOutputFile(path);

  if (subformat === 'fixed') {
    let sealed = false;
    return containerTarget({
      format: 'vhd',
      file,
      size,
      write: (offset, data) => {
        checkWrite(size, offset, data, sealed);
        return file.write(offset, data);
      },
      complete: async () => {
        sealed = true;
        await file.truncate(size);
        await file.write(size, footer(TYPE_FIXED, 0xffffffffffffffffn));
      },
    });
  }

  const entries = Math.ceil(size / BLOCK);
  const batBytes = roundUp(entries * 4, 512);
  const firstBlock = BAT_OFFSET + batBytes;
  let next = firstBlock;
  const blocks = sparseBlocks({
    file,
    size,
    blockSize: BLOCK,
    allocate: () => {
      const data = next + BITMAP;
      next += BITMAP + BLOCK;
      return data;
    },
  });

  async function complete(): Promise<void> {
    blocks.seal();
    const bat = Buffer.alloc(batBytes, 0xff);
    // Every sector of an allocated block is marked present: the ones never written are zeros in the file.
    const bitmap = Buffer.alloc(BITMAP, 0xff);
    for (const [index, host] of blocks.entries()) {
      bat.writeUInt32BE((host - BITMAP) / 512, index * 4);
      await file.write(host - BITMAP, bitmap);
    }
    const dyn = Buffer.alloc(DYNAMIC_HEADER);
    dyn.write('cxsparse', 0, 'latin1');
    dyn.writeBigUInt64BE(0xffffffffffffffffn, 8); // data offset: unused
    dyn.writeBigUInt64BE(BigInt(BAT_OFFSET), 16);
    dyn.writeUInt32BE(0x00010000, 24);
    dyn.writeUInt32BE(entries, 28);
    dyn.writeUInt32BE(BLOCK, 32);
    // 40: parent UUID, 56: parent time stamp, 64: parent name, 576: parent locators: none
    dyn.writeUInt32BE(onesComplementSum(dyn), 36);
    const foot = footer(TYPE_DYNAMIC, 512n);
    await file.write(BAT_OFFSET, bat);
    await file.write(512, dyn);
    await file.write(0, foot);
    await file.write(next, foot);
  }

  return containerTarget({ format: 'vhd', file, size, write: blocks.write, complete });
}
