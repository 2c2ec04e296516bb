/**
 * Extent trees: up to 4 extents live in i_block; beyond that, packed leaf blocks of 340 extents and,
 * when more than 4 leaves, index blocks, as shallow and as full as possible — the shape e2fsck's
 * pass 1E does not offer to "optimize".
 */
import { crc32cRaw } from '../crc32c.js';
import { BLOCK_SIZE } from './layout.js';

export const MAX_EXTENT_LEN = 32768;
const PER_BLOCK = Math.floor((BLOCK_SIZE - 12) / 12); // 340
const IN_INODE = 4;
const TAIL = 12 + PER_BLOCK * 12;

export interface Extent {
  logical: number;
  physical: number;
  length: number;
}

export interface ExtentTree {
  /** The 60 bytes of i_block. */
  iblock: Buffer;
  /** Tree blocks to write, already checksummed. */
  blocks: { block: number; data: Buffer }[];
}

interface Entry12 {
  logical: number;
  encode(buf: Buffer, at: number): void;
}

function header(buf: Buffer, at: number, entries: number, max: number, depth: number): void {
  buf.writeUInt16LE(0xf30a, at);
  buf.writeUInt16LE(entries, at + 2);
  buf.writeUInt16LE(max, at + 4);
  buf.writeUInt16LE(depth, at + 6);
  buf.writeUInt32LE(0, at + 8);
}

function leafEntry(e: Extent): Entry12 {
  return {
    logical: e.logical,
    encode(buf, at) {
      buf.writeUInt32LE(e.logical, at);
      buf.writeUInt16LE(e.length, at + 4);
      buf.writeUInt16LE(Math.floor(e.physical / 2 ** 32), at + 6);
      buf.writeUInt32LE(e.physical % 2 ** 32, at + 8);
    },
  };
}

function indexEntry(logical: number, child: number): Entry12 {
  return {
    logical,
    encode(buf, at) {
      buf.writeUInt32LE(logical, at);
      buf.writeUInt32LE(child % 2 ** 32, at + 4);
      buf.writeUInt16LE(Math.floor(child / 2 ** 32), at + 8);
      buf.writeUInt16LE(0, at + 10);
    },
  };
}

/** How many tree blocks `count` extents need (for sizing before allocation). */
export function extentTreeBlocks(count: number): number {
  let blocks = 0;
  let n = count;
  while (n > IN_INODE) {
    n = Math.ceil(n / PER_BLOCK);
    blocks += n;
  }
  return blocks;
}

/**
 * Writes `extents` (at most 4) into the 60 bytes of i_block at `at` of `inode`, as buildExtentTree
 * would: the case of almost every file, without the tree's allocations. False when they do not fit.
 */
export function writeInlineExtents(inode: Buffer, at: number, extents: readonly Extent[]): boolean {
  if (extents.length > IN_INODE) return false;
  inode.fill(0, at, at + 60);
  header(inode, at, extents.length, IN_INODE, 0);
  for (let k = 0; k < extents.length; k++) {
    const e = extents[k] as Extent;
    const o = at + 12 + k * 12;
    inode.writeUInt32LE(e.logical, o);
    inode.writeUInt16LE(e.length, o + 4);
    inode.writeUInt16LE(Math.floor(e.physical / 2 ** 32), o + 6);
    inode.writeUInt32LE(e.physical % 2 ** 32, o + 8);
  }
  return true;
}

/**
 * Builds the tree for `extents` (sorted, non-overlapping); `alloc` hands out one block per tree node.
 * `csumSeed` is the owning inode's checksum seed.
 */
export function buildExtentTree(extents: Extent[], alloc: () => number, csumSeed: number): ExtentTree {
  const iblock = Buffer.alloc(60);
  const blocks: { block: number; data: Buffer }[] = [];
  let level: Entry12[] = extents.map(leafEntry);
  let depth = 0;
  while (level.length > IN_INODE) {
    const up: Entry12[] = [];
    for (let i = 0; i < level.length; i += PER_BLOCK) {
      const chunk = level.slice(i, i + PER_BLOCK);
      const data = Buffer.alloc(BLOCK_SIZE);
      header(data, 0, chunk.length, PER_BLOCK, depth);
      for (const [k, e] of chunk.entries()) e.encode(data, 12 + k * 12);
      data.writeUInt32LE(crc32cRaw(csumSeed, data.subarray(0, TAIL)), TAIL);
      const block = alloc();
      blocks.push({ block, data });
      up.push(indexEntry((chunk[0] as Entry12).logical, block));
    }
    level = up;
    depth++;
  }
  header(iblock, 0, level.length, IN_INODE, depth);
  for (const [k, e] of level.entries()) e.encode(iblock, 12 + k * 12);
  return { iblock, blocks };
}
