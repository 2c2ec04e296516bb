/**
 * Directories: 4 KiB blocks of `ext4_dir_entry_2` records, each block ending in the 12-byte checksum
 * tail metadata_csum requires. A directory that fits one block is linear; a bigger one gets a hash
 * tree (dir_index), as the kernel would have built it: a dx root in block 0, leaves sorted by the
 * half-MD4 hash of the names, and one level of dx nodes beyond 507 leaves
 * (Documentation/filesystems/ext4/directory.rst).
 */
import { CloudletsError } from '../../errors.js';
import { crc32cRaw } from '../crc32c.js';
import { dirHash } from './hash.js';
import { BLOCK_SIZE } from './layout.js';

export const FT_REG = 1;
export const FT_DIR = 2;
export const FT_CHR = 3;
export const FT_BLK = 4;
export const FT_FIFO = 5;
export const FT_SOCK = 6;
export const FT_LNK = 7;

export interface DirChild {
  name: Buffer;
  ino: number;
  fileType: number;
}

const TAIL = 12;
const ROOM = BLOCK_SIZE - TAIL;
const recLen = (nameLen: number): number => (8 + nameLen + 3) & ~3;
/** dx entries per root and per node, each less the 8-byte dx_tail that holds the checksum. */
const ROOT_LIMIT = (BLOCK_SIZE - 0x20 - 8) / 8; // 507
const NODE_LIMIT = (BLOCK_SIZE - 0x08 - 8) / 8; // 510
const HASH_VERSION_HALF_MD4 = 1;

/** Blocks of packed records, each sealed with the checksum tail. */
class LeafPacker {
  readonly blocks: Buffer[] = [];
  private cur = Buffer.alloc(BLOCK_SIZE);
  private pos = 0;
  private last = -1;

  constructor(private readonly csumSeed: number) {}

  fits(nameLen: number): boolean {
    return this.pos + recLen(nameLen) <= ROOM;
  }

  get empty(): boolean {
    return this.last < 0;
  }

  put(ino: number, name: Buffer, fileType: number): void {
    if (!this.fits(name.length)) this.seal();
    const r = recLen(name.length);
    this.cur.writeUInt32LE(ino, this.pos);
    this.cur.writeUInt16LE(r, this.pos + 4);
    this.cur.writeUInt8(name.length, this.pos + 6);
    this.cur.writeUInt8(fileType, this.pos + 7);
    name.copy(this.cur, this.pos + 8);
    this.last = this.pos;
    this.pos += r;
  }

  /** Ends the current block: the last record spans to the tail (an empty block gets one unused record). */
  seal(): void {
    const b = this.cur;
    if (this.last < 0) b.writeUInt16LE(ROOM, 4);
    else b.writeUInt16LE(ROOM - this.last, this.last + 4);
    b.writeUInt16LE(TAIL, ROOM + 4);
    b.writeUInt8(0xde, ROOM + 7);
    b.writeUInt32LE(crc32cRaw(this.csumSeed, b.subarray(0, ROOM)), ROOM + 8);
    this.blocks.push(b);
    this.cur = Buffer.alloc(BLOCK_SIZE);
    this.pos = 0;
    this.last = -1;
  }
}

/** Whether the records (plus `.` and `..`) fit one block, i.e. the directory stays linear. */
export function fitsOneBlock(nameLengths: Iterable<number>): boolean {
  let used = recLen(1) + recLen(2);
  for (const n of nameLengths) {
    used += recLen(n);
    if (used > ROOM) return false;
  }
  return true;
}

/** Exact number of blocks `buildDirBlocks` produces for children with these name lengths (for sizing). */
export function dirBlockCount(nameLengths: number[], minBlocks = 1): number {
  if (fitsOneBlock(nameLengths)) return minBlocks;
  // Hash order changes how records pack; bound it by the worst packing (each block may waste a record).
  let leaves = 1;
  let used = 0;
  for (const n of nameLengths) {
    const r = recLen(n);
    if (used + r > ROOM - 263) {
      leaves++;
      used = 0;
    }
    used += r;
  }
  return 1 + leaves + (leaves > ROOT_LIMIT ? Math.ceil(leaves / NODE_LIMIT) : 0);
}

export interface DirBlocks {
  blocks: Buffer[];
  /** A hash tree: the inode needs EXT4_INDEX_FL. */
  indexed: boolean;
}

/**
 * The directory's blocks, checksummed with the directory inode's seed. `minBlocks` pads a linear
 * directory with empty blocks (lost+found gets 4, as mke2fs makes it, so e2fsck can reconnect files
 * without allocating).
 */
export function buildDirBlocks(
  self: number,
  parent: number,
  children: DirChild[],
  opts: { csumSeed: number; hashSeed: Uint32Array; minBlocks?: number; where: string },
): DirBlocks {
  const packer = new LeafPacker(opts.csumSeed);
  if (fitsOneBlock(children.map((c) => c.name.length))) {
    packer.put(self, Buffer.from('.'), FT_DIR);
    packer.put(parent, Buffer.from('..'), FT_DIR);
    for (const c of children) packer.put(c.ino, c.name, c.fileType);
    packer.seal();
    while (packer.blocks.length < (opts.minBlocks ?? 1)) packer.seal();
    return { blocks: packer.blocks, indexed: false };
  }
  return { blocks: buildHtree(self, parent, children, packer, opts), indexed: true };
}

interface DxEntry {
  hash: number;
  block: number;
}

function buildHtree(
  self: number,
  parent: number,
  children: DirChild[],
  packer: LeafPacker,
  opts: { csumSeed: number; hashSeed: Uint32Array; where: string },
): Buffer[] {
  const hashed = children.map((c) => ({ c, hash: dirHash(c.name, opts.hashSeed) }));
  hashed.sort((a, b) => a.hash - b.hash || Buffer.compare(a.c.name, b.c.name));
  // Leaves are logical blocks 1..n; each starts at a hash, with the low bit set when that hash
  // continues from the previous leaf (a collision split across two blocks).
  const leafStarts: DxEntry[] = [];
  let prevHash = -1;
  for (const { c, hash } of hashed) {
    if (packer.empty || !packer.fits(c.name.length)) {
      if (!packer.empty) packer.seal();
      leafStarts.push({ hash: hash === prevHash ? hash | 1 : hash, block: 1 + leafStarts.length });
    }
    packer.put(c.ino, c.name, c.fileType);
    prevHash = hash;
  }
  packer.seal();
  const leaves = packer.blocks;
  let rootEntries = leafStarts;
  let levels = 0;
  const nodes: Buffer[] = [];
  if (leafStarts.length > ROOT_LIMIT) {
    levels = 1;
    rootEntries = [];
    for (let i = 0; i < leafStarts.length; i += NODE_LIMIT) {
      const chunk = leafStarts.slice(i, i + NODE_LIMIT);
      const block = 1 + leaves.length + nodes.length;
      const node = Buffer.alloc(BLOCK_SIZE);
      node.writeUInt16LE(BLOCK_SIZE, 4); // a fake empty record spanning the block
      writeDx(node, 0x08, NODE_LIMIT, chunk, opts.csumSeed);
      nodes.push(node);
      rootEntries.push({ hash: (chunk[0] as DxEntry).hash, block });
    }
    if (rootEntries.length > ROOT_LIMIT) {
      throw new CloudletsError(
        'ENOTSUP',
        `directory has too many entries (${children.length}) for a two-level hash tree`,
        {
          where: opts.where,
        },
      );
    }
  }
  const root = Buffer.alloc(BLOCK_SIZE);
  root.writeUInt32LE(self, 0);
  root.writeUInt16LE(12, 4);
  root.writeUInt8(1, 6);
  root.writeUInt8(FT_DIR, 7);
  root.write('.', 8);
  root.writeUInt32LE(parent, 12);
  root.writeUInt16LE(BLOCK_SIZE - 12, 16);
  root.writeUInt8(2, 18);
  root.writeUInt8(FT_DIR, 19);
  root.write('..', 20);
  root.writeUInt32LE(0, 0x18); // dx_root_info.reserved_zero
  root.writeUInt8(HASH_VERSION_HALF_MD4, 0x1c);
  root.writeUInt8(8, 0x1d); // info_length
  root.writeUInt8(levels, 0x1e);
  writeDx(root, 0x20, ROOT_LIMIT, rootEntries, opts.csumSeed);
  return [root, ...leaves, ...nodes];
}

/** dx_countlimit, the entries (the first one's hash slot holds limit and count), and the dx_tail checksum. */
function writeDx(buf: Buffer, at: number, limit: number, entries: DxEntry[], csumSeed: number): void {
  buf.writeUInt16LE(limit, at);
  buf.writeUInt16LE(entries.length, at + 2);
  entries.forEach((e, i) => {
    if (i > 0) buf.writeUInt32LE(e.hash >>> 0, at + i * 8);
    buf.writeUInt32LE(e.block, at + i * 8 + 4);
  });
  const tail = at + limit * 8;
  const covered = at + entries.length * 8;
  const crc = crc32cRaw(crc32cRaw(csumSeed, buf.subarray(0, covered)), Buffer.alloc(8));
  buf.writeUInt32LE(crc, tail + 4);
}
