// VMware VMDK hosted sparse extents (VMware "Virtual Disk Format 5.0"), one file with the descriptor
// embedded, 64 KiB grains, 512 grain table entries per grain table.
//
// monolithicSparse: header, descriptor, redundant grain directory + tables, grain directory + tables
// (all laid out in advance, as VMware and QEMU lay them out), then grains in order of first touch
// (sparse.ts); the tables are filled in at finish().
//
// streamOptimized: see vmdk-stream.ts.
import { basename } from 'node:path';
import { containerTarget } from './container.js';
import { openOutputFile, roundUp } from './file.js';
import { seedBytes } from './ids.js';
import type { DiskTarget, DiskTargetOptions, VmdkAdapter } from './index.js';
import { sparseBlocks } from './sparse.js';
import { openVmdkStreamTarget } from './vmdk-stream.js';

export const SECTOR = 512;
export const GRAIN_SECTORS = 128;
export const GRAIN = GRAIN_SECTORS * SECTOR;
export const GTES_PER_GT = 512;
export const GT_SECTORS = (GTES_PER_GT * 4) / SECTOR;
export const DESCRIPTOR_OFFSET = 1;
export const DESCRIPTOR_SECTORS = 20;

const FLAG_NL_DETECT = 1 << 0;
const FLAG_REDUNDANT_GT = 1 << 1;
export const FLAG_COMPRESSED = 1 << 16;
export const FLAG_MARKERS = 1 << 17;
export const GD_AT_END = 0xffffffffffffffffn;

export async function openVmdkTarget(
  path: string,
  size: number,
  opts: DiskTargetOptions,
): Promise<DiskTarget> {
  if ((opts.subformat ?? 'streamOptimized') === 'streamOptimized')
    return openVmdkStreamTarget(path, size, opts);
  return openMonolithicSparse(path, size, opts);
}

/** The 512-byte sparse extent header. */
export function vmdkHeader(o: {
  capacitySectors: number;
  flags: number;
  rgdOffset: number;
  gdOffset: bigint;
  overheadSectors: number;
  compressed: boolean;
}): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.write('KDMV', 0, 'latin1');
  h.writeUInt32LE(o.compressed ? 3 : 1, 4); // version 3 is the one with compressed grains
  h.writeUInt32LE(o.flags | FLAG_NL_DETECT, 8);
  h.writeBigUInt64LE(BigInt(o.capacitySectors), 12);
  h.writeBigUInt64LE(BigInt(GRAIN_SECTORS), 20);
  h.writeBigUInt64LE(BigInt(DESCRIPTOR_OFFSET), 28);
  h.writeBigUInt64LE(BigInt(DESCRIPTOR_SECTORS), 36);
  h.writeUInt32LE(GTES_PER_GT, 44);
  h.writeBigUInt64LE(BigInt(o.rgdOffset), 48);
  h.writeBigUInt64LE(o.gdOffset, 56);
  h.writeBigUInt64LE(BigInt(o.overheadSectors), 64);
  // 72: unclean shutdown 0; 73: the newline-detection characters
  h.write('\n \r\n', 73, 'latin1');
  h.writeUInt16LE(o.compressed ? 1 : 0, 77); // 1: deflate
  return h;
}

/** The embedded descriptor, padded to its 20 sectors. CID from the seed. */
export function vmdkDescriptor(o: {
  createType: 'monolithicSparse' | 'streamOptimized';
  capacitySectors: number;
  name: string;
  seed: string;
  adapter?: VmdkAdapter | undefined;
}): Buffer {
  const cid = seedBytes(o.seed, 'vmdk-cid', 4).readUInt32BE(0) || 1;
  const heads = 16;
  const sectors = 63;
  const cylinders = Math.min(16383, Math.floor(o.capacitySectors / (heads * sectors)));
  const text = [
    '# Disk DescriptorFile',
    'version=1',
    `CID=${cid.toString(16).padStart(8, '0')}`,
    'parentCID=ffffffff',
    `createType="${o.createType}"`,
    '',
    '# Extent description',
    `RW ${o.capacitySectors} SPARSE "${o.name.replace(/"/g, '_')}"`,
    '',
    '# The Disk Data Base',
    '#DDB',
    '',
    'ddb.virtualHWVersion = "4"',
    `ddb.geometry.cylinders = "${cylinders}"`,
    `ddb.geometry.heads = "${heads}"`,
    `ddb.geometry.sectors = "${sectors}"`,
    `ddb.adapterType = "${o.adapter ?? 'ide'}"`,
    '',
  ].join('\n');
  const out = Buffer.alloc(DESCRIPTOR_SECTORS * SECTOR);
  out.write(text, 0, 'utf8');
  return out;
}

async function openMonolithicSparse(
  path: string,
  size: number,
  opts: DiskTargetOptions,
): Promise<DiskTarget> {
  const file = await openOutputFile(path);
  const capacitySectors = Math.ceil(size / SECTOR);
  const grains = Math.ceil(size / GRAIN);
  const gtCount = Math.ceil(grains / GTES_PER_GT);
  const gdSectors = Math.ceil((gtCount * 4) / SECTOR);
  const rgdOffset = DESCRIPTOR_OFFSET + DESCRIPTOR_SECTORS;
  const gdOffset = rgdOffset + gdSectors + gtCount * GT_SECTORS;
  const overheadSectors = roundUp(gdOffset + gdSectors + gtCount * GT_SECTORS, GRAIN_SECTORS);
  let next = overheadSectors * SECTOR;
  const blocks = sparseBlocks({
    file,
    size,
    blockSize: GRAIN,
    allocate: () => {
      const at = next;
      next += GRAIN;
      return at;
    },
  });

  async function complete(): Promise<void> {
    blocks.seal();
    const gts = Buffer.alloc(gtCount * GT_SECTORS * SECTOR);
    for (const [index, host] of blocks.entries()) gts.writeUInt32LE(host / SECTOR, index * 4);
    // Two copies of the directory and tables; each directory points at its own copy of the tables.
    for (const dirOffset of [rgdOffset, gdOffset]) {
      const gd = Buffer.alloc(gdSectors * SECTOR);
      for (let i = 0; i < gtCount; i++) gd.writeUInt32LE(dirOffset + gdSectors + i * GT_SECTORS, i * 4);
      await file.write(dirOffset * SECTOR, gd);
      await file.write((dirOffset + gdSectors) * SECTOR, gts);
    }
    const name = opts.name ?? basename(path);
    await file.write(
      DESCRIPTOR_OFFSET * SECTOR,
      vmdkDescriptor({
        createType: 'monolithicSparse',
        capacitySectors,
        name,
        seed: opts.seed,
        adapter: opts.vmdkAdapter,
      }),
    );
    await file.write(
      0,
      vmdkHeader({
        capacitySectors,
        flags: FLAG_REDUNDANT_GT,
        rgdOffset,
        gdOffset: BigInt(gdOffset),
        overheadSectors,
        compressed: false,
      }),
    );
    await file.truncate(next);
  }

  return containerTarget({ format: 'vmdk', file, size, write: blocks.write, complete });
}
