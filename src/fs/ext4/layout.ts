/**
 * Where everything goes: block groups, the flex_bg-packed bitmaps and inode tables, the sparse_super
 * superblock backups, the journal. Pure arithmetic from the options, shared by the writer and the
 * size estimate so both agree on the overhead to the block.
 */
import { CloudletsError } from '../../errors.js';

export const BLOCK_SIZE = 4096;
export const BLOCKS_PER_GROUP = 32768;
export const INODE_SIZE = 256;
export const INODES_PER_BLOCK = BLOCK_SIZE / INODE_SIZE;
export const DESC_SIZE = 64;
/** mke2fs's default `-G 16`: the bitmaps and inode tables of 16 groups sit together. */
export const LOG_GROUPS_PER_FLEX = 4;
export const GROUPS_PER_FLEX = 1 << LOG_GROUPS_PER_FLEX;
export const FIRST_INO = 11;
/** The directory e2fsck expects at the root, sized for its own use (the writer makes it 4 blocks). */
export const LOST_FOUND_PATH = Buffer.from('/lost+found');
export const DEFAULT_INODE_RATIO = 16384;
export const DEFAULT_RESERVED_PERCENT = 5;
/** Below this mke2fs makes no journal; we follow it (8 MiB). */
const MIN_JOURNAL_FS_BLOCKS = 2048;
/** Smallest filesystem we write: room for the metadata of one group and a few files (1 MiB). */
export const MIN_FS_BLOCKS = 256;

export interface GroupLayout {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  /** Holds a superblock copy and group descriptor table (sparse_super: 0, 1, powers of 3, 5, 7). */
  hasSuper: boolean;
}

/** A half-open run of blocks `[start, end)`. */
export interface Range {
  start: number;
  end: number;
}

export interface Layout {
  blocksCount: number;
  groupCount: number;
  inodesPerGroup: number;
  inodesCount: number;
  inodeTableBlocks: number;
  gdtBlocks: number;
  journalBlocks: number;
  /** Physical runs of the journal, in logical order. */
  journalRuns: Range[];
  groups: GroupLayout[];
  /** Every block taken before any content: superblocks, descriptors, bitmaps, inode tables, journal. Sorted, merged. */
  reserved: Range[];
  reservedTotal: number;
  /** s_r_blocks_count: blocks kept for root, like mke2fs `-m`. */
  rootReservedBlocks: number;
}

export interface LayoutOptions {
  sizeBytes: number;
  inodeRatio?: number | undefined;
  inodeCount?: number | undefined;
  journalBlocks?: number | undefined;
  reservedPercent?: number | undefined;
}

function isPowerOf(n: number, base: number): boolean {
  let x = base;
  while (x < n) x *= base;
  return x === n;
}

export function groupHasSuper(g: number): boolean {
  return g === 0 || g === 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
}

/** mke2fs' journal size table (`ext2fs_default_journal_size`), in blocks; 0 = no journal. */
export function defaultJournalBlocks(blocksCount: number): number {
  if (blocksCount < MIN_JOURNAL_FS_BLOCKS) return 0;
  if (blocksCount < 32768) return 1024;
  if (blocksCount < 256 * 1024) return 4096;
  if (blocksCount < 512 * 1024) return 8192;
  if (blocksCount < 4096 * 1024) return 16384;
  if (blocksCount < 8192 * 1024) return 32768;
  if (blocksCount < 16384 * 1024) return 65536;
  if (blocksCount < 32768 * 1024) return 131072;
  return 262144;
}

/** Inserts `r` into the sorted, merged list `list`. */
function addRange(list: Range[], r: Range): void {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as Range).start < r.start) lo = mid + 1;
    else hi = mid;
  }
  list.splice(lo, 0, { start: r.start, end: r.end });
  // Merge touching neighbours; the list stays short (a few ranges per flex group).
  for (let i = Math.max(0, lo - 1); i < list.length - 1; ) {
    const a = list[i] as Range;
    const b = list[i + 1] as Range;
    if (a.end >= b.start) {
      a.end = Math.max(a.end, b.end);
      list.splice(i + 1, 1);
    } else if (i > lo) break;
    else i++;
  }
}

/** First run of `count` free blocks at or after `from`, below `limit`; -1 when there is none. */
function findFree(list: Range[], from: number, count: number, limit: number): number {
  let pos = from;
  for (const r of list) {
    if (r.end <= pos) continue;
    if (r.start >= pos + count) break;
    pos = r.end;
  }
  return pos + count <= limit ? pos : -1;
}

function tooSmall(sizeBytes: number, why: string): CloudletsError {
  return new CloudletsError('EOUTPUT', `an ext4 filesystem of ${sizeBytes} bytes is too small: ${why}`, {
    hint: 'give a larger size (or --size auto)',
  });
}

export function planLayout(opts: LayoutOptions): Layout {
  let blocksCount = Math.floor(opts.sizeBytes / BLOCK_SIZE);
  if (blocksCount < MIN_FS_BLOCKS)
    throw tooSmall(opts.sizeBytes, `the minimum is ${MIN_FS_BLOCKS * BLOCK_SIZE} bytes`);
  if (blocksCount >= 2 ** 48) throw tooSmall(opts.sizeBytes, 'more than 2^48 blocks');
  let groupCount = Math.ceil(blocksCount / BLOCKS_PER_GROUP);
  let gdtBlocks = Math.ceil((groupCount * DESC_SIZE) / BLOCK_SIZE);
  // Like mke2fs, drop a last group too small to be worth its superblock backup.
  const rem = blocksCount - (groupCount - 1) * BLOCKS_PER_GROUP;
  if (groupCount > 1 && rem < (groupHasSuper(groupCount - 1) ? 1 + gdtBlocks : 0) + 50) {
    blocksCount -= rem;
    groupCount--;
    gdtBlocks = Math.ceil((groupCount * DESC_SIZE) / BLOCK_SIZE);
  }

  const wantedInodes =
    opts.inodeCount ?? Math.floor((blocksCount * BLOCK_SIZE) / (opts.inodeRatio ?? DEFAULT_INODE_RATIO));
  let inodesPerGroup = Math.ceil(Math.max(wantedInodes, FIRST_INO + 5) / groupCount);
  inodesPerGroup = Math.ceil(inodesPerGroup / INODES_PER_BLOCK) * INODES_PER_BLOCK;
  inodesPerGroup = Math.min(inodesPerGroup, BLOCK_SIZE * 8);
  if (inodesPerGroup * groupCount >= 2 ** 32)
    inodesPerGroup = Math.floor((2 ** 32 - 1) / groupCount / 16) * 16;
  const inodeTableBlocks = inodesPerGroup / INODES_PER_BLOCK;

  const reserved: Range[] = [];
  const groups: GroupLayout[] = [];
  for (let g = 0; g < groupCount; g++) {
    const hasSuper = groupHasSuper(g);
    if (hasSuper)
      addRange(reserved, { start: g * BLOCKS_PER_GROUP, end: g * BLOCKS_PER_GROUP + 1 + gdtBlocks });
    groups.push({ blockBitmap: 0, inodeBitmap: 0, inodeTable: 0, hasSuper });
  }
  const place = (from: number, count: number): number => {
    const at = findFree(reserved, from, count, blocksCount);
    if (at < 0) throw tooSmall(opts.sizeBytes, 'no room for the inode tables');
    addRange(reserved, { start: at, end: at + count });
    return at;
  };
  for (let f = 0; f * GROUPS_PER_FLEX < groupCount; f++) {
    const first = f * GROUPS_PER_FLEX;
    const last = Math.min(groupCount, first + GROUPS_PER_FLEX);
    const start = first * BLOCKS_PER_GROUP;
    for (let g = first; g < last; g++) (groups[g] as GroupLayout).blockBitmap = place(start, 1);
    for (let g = first; g < last; g++) (groups[g] as GroupLayout).inodeBitmap = place(start, 1);
    for (let g = first; g < last; g++) (groups[g] as GroupLayout).inodeTable = place(start, inodeTableBlocks);
  }

  const journalBlocks = opts.journalBlocks ?? defaultJournalBlocks(blocksCount);
  const journalRuns: Range[] = [];
  if (journalBlocks > 0) {
    if (journalBlocks < 1024)
      throw new CloudletsError('EUSAGE', `a journal needs at least 1024 blocks, not ${journalBlocks}`);
    let left = journalBlocks;
    let pos = 0;
    while (left > 0) {
      pos = findFree(reserved, pos, 1, blocksCount);
      if (pos < 0) throw tooSmall(opts.sizeBytes, `no room for a journal of ${journalBlocks} blocks`);
      let end = pos;
      const next = reserved.find((r) => r.start > pos);
      const stop = Math.min(next ? next.start : blocksCount, pos + left);
      end = stop;
      journalRuns.push({ start: pos, end });
      left -= end - pos;
      pos = end;
    }
    for (const r of journalRuns) addRange(reserved, r);
  }
  const reservedTotal = reserved.reduce((n, r) => n + (r.end - r.start), 0);
  if (blocksCount - reservedTotal < 16)
    throw tooSmall(opts.sizeBytes, 'metadata and journal leave no room for content');
  const pct = opts.reservedPercent ?? DEFAULT_RESERVED_PERCENT;
  return {
    blocksCount,
    groupCount,
    inodesPerGroup,
    inodesCount: inodesPerGroup * groupCount,
    inodeTableBlocks,
    gdtBlocks,
    journalBlocks,
    journalRuns,
    groups,
    reserved,
    reservedTotal,
    rootReservedBlocks: Math.floor((blocksCount * pct) / 100),
  };
}
