/**
 * Streams an entry tree into an ext4 filesystem. File content goes straight into data blocks,
 * allocated in ascending order as entries arrive; only metadata stays in memory (inode tables of
 * the groups in use, the children of the directories still open). A directory is written as soon as
 * the sorted stream leaves it; inode tables, bitmaps, descriptors and superblocks go last.
 */

import type { BlockTarget } from '../../disk/target.js';
import { CloudletsError } from '../../errors.js';
import type { Entry, EntryStream, SyncContentReader } from '../../stream/entry.js';
import { asBatch, comparePaths } from '../../stream/entry.js';
import { takeBuffer, takeZeroedBuffer } from '../../util/warm-buffers.js';
import { crc32cRaw } from '../crc32c.js';
import {
  buildDirBlocks,
  type DirChild,
  FT_BLK,
  FT_CHR,
  FT_DIR,
  FT_FIFO,
  FT_LNK,
  FT_REG,
  FT_SOCK,
} from './dir.js';
import { buildExtentTree, type Extent, MAX_EXTENT_LEN, writeInlineExtents } from './extents.js';
import { hashSeedWords } from './hash.js';
import {
  EXT4_EXTENTS_FL,
  EXT4_INDEX_FL,
  getLinks,
  IN_INODE_XATTR_OFFSET,
  inodeCsumSeed,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  setInodeBlocks,
  setInodeChecksum,
  setInodeFileAcl,
  setInodeSize,
  setLinks,
  writeDevice,
  writeInodeBase,
} from './inode.js';
import {
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  DESC_SIZE,
  INODE_SIZE,
  type Layout,
  LOST_FOUND_PATH,
  planLayout,
  type Range,
} from './layout.js';
import { OpenDirs } from './open-dirs.js';
import { type Ext4SizeStats, estimateExt4Size } from './size.js';
import { BG_INODE_ZEROED, encodeGroupDesc, encodeJournalSuperblock, encodeSuperblock } from './superblock.js';
import { type EncodedXattrs, encodeXattrs, sealXattrBlock } from './xattr.js';

export interface Ext4Options {
  /** Filesystem size in bytes; a multiple of the block size (a partial last block is ignored). */
  sizeBytes: number;
  /** s_uuid, 16 bytes. */
  uuid: Buffer;
  /** s_hash_seed, 16 bytes: the seed of the directory index hash. */
  hashSeed: Buffer;
  /** Volume label, at most 16 bytes of UTF-8. */
  label?: string | undefined;
  /** Superblock and journal times, and the times of what the writer creates itself (lost+found). */
  timestampSec: number;
  /** Only 4096 is supported. */
  blockSize?: 4096 | undefined;
  /** Bytes per inode; default 16384, like mke2fs. */
  inodeRatio?: number | undefined;
  /** Exact inode count (rounded up to fill inode table blocks); overrides `inodeRatio`. */
  inodeCount?: number | undefined;
  /**
   * Journal size in blocks, at least 1024; 0 = no journal. Default: mke2fs' table (none below 8 MiB,
   * 1024 blocks below 128 MiB, 4096 below 1 GiB, 8192 below 2 GiB, 16384 below 16 GiB, ... up to 262144).
   */
  journalBlocks?: number | undefined;
  /** Share of blocks reserved for root (s_r_blocks_count), default 5 like mke2fs. */
  reservedPercent?: number | undefined;
  /**
   * What a metadata pre-pass counted (`createExt4Tally`). When given, content that cannot fit is
   * refused before any byte is written, with the size it needs. Without it the writer only finds out
   * when it runs out of blocks or inodes, part-way through.
   */
  stats?: Ext4SizeStats | undefined;
  /**
   * Whether the entries may hold hard links (default true). A caller that knows they hold none (a
   * build's metadata pass counted none) says false, and the writer keeps no index of the paths a hard
   * link could name: a string and a map slot for every file of the tree otherwise.
   */
  hardLinks?: boolean | undefined;
}

export interface Ext4Result {
  /** Inodes in use, including the 11 reserved ones. */
  inodesUsed: number;
  blocksUsed: number;
  blocksCount: number;
  /** The filesystem's size: `sizeBytes` rounded down to a block (or a group, when the last would be tiny). */
  sizeBytes: number;
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
/** What most entries have: no extended attributes. */
const NO_XATTRS: EncodedXattrs = { inInode: undefined, block: undefined };
const DOT = Buffer.from('.');
const DOT_DOT = Buffer.from('..');
/** Data is written in runs of up to 1 MiB. */
const STAGE_BLOCKS = 256;
/**
 * Runs written at once beyond the one being filled. Each holds a 1 MiB stage buffer, touched for the first
 * time when it is first filled (a page fault per 4 KiB, ~10 us each on a VM); the output is written by one
 * thread (UV_THREADPOOL_SIZE=1, set by the loader), which two queued runs keep busy. 4 took ~2,000 faults
 * for 8 MiB of stages; 2 took 600 fewer and a qcow2 build was ~20 ms faster (median of 14 paired runs).
 */
const MAX_INFLIGHT = 2;
/** Bytes of a stage buffer, and how many a writer holds at most: one filling, MAX_INFLIGHT + 1 writing. */
export const STAGE_BYTES = STAGE_BLOCKS * BLOCK_SIZE;
export const MAX_STAGE_BUFFERS = MAX_INFLIGHT + 2;
/**
 * Inode tables are held in slabs of 256 inodes (64 KiB), made as inodes are used. A fresh slab's memory
 * is touched on the main thread as its inodes are written, a page fault per 4 KiB (~10 us on a VM); a
 * disk build warms WARM_INODE_SLABS of them on the thread pool while the tree is read (warm-buffers.ts),
 * the inodes of ~8,000 paths.
 */
export const INODE_SLAB_BYTES = 64 * 1024;
export const WARM_INODE_SLABS = 32;
const SLAB_INODES = INODE_SLAB_BYTES / INODE_SIZE;
const SLAB_BLOCKS = INODE_SLAB_BYTES / BLOCK_SIZE;
const ROOT_INO = 2;
const JOURNAL_INO = 8;
const LOST_FOUND_INO = 11;
const MAX_LINKS = 65000;
/** Logical block numbers are 32-bit. */
const MAX_FILE_SIZE = (2 ** 32 - 1) * BLOCK_SIZE;

interface OpenDir {
  path: Buffer;
  ino: number;
  parentIno: number;
  children: DirChild[];
  subdirs: number;
  extraBlocks: number;
  minBlocks: number;
}

function fileTypeOf(mode: number): number {
  switch (mode & 0xf000) {
    case S_IFREG:
      return FT_REG;
    case S_IFDIR:
      return FT_DIR;
    case S_IFCHR:
      return FT_CHR;
    case S_IFBLK:
      return FT_BLK;
    case S_IFIFO:
      return FT_FIFO;
    case S_IFSOCK:
      return FT_SOCK;
    default:
      return FT_LNK;
  }
}

const ROOT_PATH = Buffer.from('/');
const SLASH = 0x2f;

function setBits(bm: Buffer, from: number, to: number): void {
  let i = from;
  for (; i < to && i & 7; i++) bm[i >> 3] = (bm[i >> 3] as number) | (1 << (i & 7));
  if (i + 8 <= to) {
    bm.fill(0xff, i >> 3, to >> 3);
    i = to & ~7;
  }
  for (; i < to; i++) bm[i >> 3] = (bm[i >> 3] as number) | (1 << (i & 7));
}

function countBits(bm: Buffer, bits: number): number {
  let n = 0;
  for (let i = 0; i < bits >> 3; i++) {
    let v = bm[i] as number;
    while (v) {
      v &= v - 1;
      n++;
    }
  }
  for (let i = bits & ~7; i < bits; i++) if ((bm[i >> 3] as number) & (1 << (i & 7))) n++;
  return n;
}

function checkOptions(target: BlockTarget, offset: number, opts: Ext4Options): Buffer {
  const bad = (m: string): CloudletsError => new CloudletsError('EUSAGE', m, { where: 'ext4 options' });
  if (opts.uuid.length !== 16) throw bad('uuid must be 16 bytes');
  if (opts.hashSeed.length !== 16) throw bad('hashSeed must be 16 bytes');
  if (opts.blockSize !== undefined && opts.blockSize !== BLOCK_SIZE)
    throw bad('only 4096-byte blocks are supported');
  const label = Buffer.from(opts.label ?? '', 'utf8');
  if (label.length > 16) throw bad(`label ${JSON.stringify(opts.label)} is longer than 16 bytes`);
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % 512 !== 0)
    throw bad(`bad partition offset ${offset}`);
  if (offset + opts.sizeBytes > target.size) {
    throw bad(
      `the filesystem (${opts.sizeBytes} bytes at ${offset}) does not fit in the ${target.size}-byte target`,
    );
  }
  return label;
}

/**
 * Writes an ext4 filesystem holding `entries` (sorted, parents first) into `target` at byte `offset`.
 * Write order, for targets that prefer ascending offsets: the journal superblock, then file content,
 * extent and xattr blocks and directories in ascending block order, then the metadata (superblocks,
 * descriptors, bitmaps, inode tables) in ascending order from the start. Zero blocks are never
 * written (holes), and a buffer handed to `target.write` is not reused before that write completes.
 * Throws CloudletsError EOUTPUT when the content does not fit (before writing if `opts.stats` is given).
 */
export async function writeExt4(
  entries: EntryStream,
  target: BlockTarget,
  offset: number,
  opts: Ext4Options,
): Promise<Ext4Result> {
  const label = checkOptions(target, offset, opts);
  const layout: Layout = planLayout(opts);
  if (opts.stats) {
    const needed = estimateExt4Size(opts.stats, opts);
    if (needed > layout.blocksCount * BLOCK_SIZE) {
      throw new CloudletsError(
        'EOUTPUT',
        `the content needs an ext4 filesystem of at least ${needed} bytes, not ${opts.sizeBytes}`,
        {
          hint: `give a size of at least ${Math.ceil(needed / 2 ** 20)} MiB, or --size auto`,
        },
      );
    }
  }
  const w = new Ext4Writer(target, offset, layout, opts);
  try {
    await w.writeJournal();
    await w.consume(entries);
    return await w.finish(label);
  } catch (err) {
    // Let the writes already started end before the caller closes (and discards) the target.
    await w.settle();
    throw err;
  }
}

/** A file being copied from a synchronous reader (Ext4Writer.copySome), where it stands. */
interface FileCopy {
  reader: SyncContentReader;
  size: number;
  /** The file's size in blocks. */
  blocks: number;
  extents: Extent[];
  /** Bytes read, blocks gone through (logical), and blocks kept (not all zeros). */
  done: number;
  logical: number;
  dataBlocks: number;
}

class Ext4Writer {
  private readonly fsSeed: number;
  private readonly hashSeed: Uint32Array;
  private readonly ipg: number;
  /** Each group's inode table, as slabs of SLAB_INODES inodes (made as they are used). */
  private readonly tables = new Map<number, Buffer[]>();
  private readonly usedDirs: Uint32Array;
  private nextIno = LOST_FOUND_INO + 1;
  private cursor = 0;
  private reservedIdx = 0;
  /** Non-directories by path (latin1), for hard links to name; undefined when told there are none. */
  private readonly nonDirs: Map<string, number> | undefined;
  /** Directories are written when the entries leave them (OpenDirs says when that is). */
  private readonly dirs = new OpenDirs<OpenDir>((d) => this.finishDir(d));
  private lostFoundSeen = false;
  private journalIBlock: Buffer | undefined;
  private stage: Buffer = takeBuffer(STAGE_BYTES);
  /** Staging buffers whose writes have completed, used again: a fresh 1 MiB buffer per run costs GC time. */
  private readonly spareStages: Buffer[] = [];
  /** A file's last, partial block in the streamed path (copied into the stage, so shared by all files). */
  private readonly partial = Buffer.alloc(BLOCK_SIZE);
  private stageStart = 0;
  private stageCount = 0;
  /** The entry being written, for error messages (its text is made only for one). */
  private currentEntry: Buffer = Buffer.from('/');
  private inflight: Promise<void>[] = [];
  private failure: unknown;

  constructor(
    private readonly target: BlockTarget,
    private readonly offset: number,
    private readonly layout: Layout,
    private readonly opts: Ext4Options,
  ) {
    this.fsSeed = crc32cRaw(0xffffffff, opts.uuid);
    this.hashSeed = hashSeedWords(opts.hashSeed);
    this.ipg = layout.inodesPerGroup;
    this.usedDirs = new Uint32Array(layout.groupCount);
    this.nonDirs = opts.hardLinks === false ? undefined : new Map();
  }

  private get currentPath(): string {
    return this.currentEntry.toString('utf8');
  }

  private inode(ino: number): Buffer {
    const g = Math.floor((ino - 1) / this.ipg);
    const index = (ino - 1) % this.ipg;
    const slab = this.slab(g, Math.floor(index / SLAB_INODES));
    const at = (index % SLAB_INODES) * INODE_SIZE;
    return slab.subarray(at, at + INODE_SIZE);
  }

  /** Slab `s` of group `g`'s inode table (all zero when new). */
  private slab(g: number, s: number): Buffer {
    let slabs = this.tables.get(g);
    if (!slabs) {
      slabs = [];
      this.tables.set(g, slabs);
    }
    let slab = slabs[s];
    if (!slab) {
      slab = takeZeroedBuffer(INODE_SLAB_BYTES);
      slabs[s] = slab;
    }
    return slab;
  }

  private allocInode(): number {
    if (this.nextIno > this.layout.inodesCount) {
      throw new CloudletsError('EOUTPUT', `the filesystem has only ${this.layout.inodesCount} inodes`, {
        where: this.currentPath,
        hint: 'give a larger size or a smaller inode ratio (estimateExt4Size counts the entries)',
      });
    }
    return this.nextIno++;
  }

  /** Next free block in ascending order, skipping the metadata laid out in advance. */
  private allocBlock(): number {
    this.skipReserved();
    return this.cursor++;
  }

  /**
   * Moves the cursor past metadata laid out in advance; returns how many blocks from it on are free and
   * contiguous (at least 1: running out of space throws).
   */
  private skipReserved(): number {
    const reserved = this.layout.reserved;
    for (;;) {
      const r = reserved[this.reservedIdx];
      if (!r || this.cursor < r.start) break;
      if (this.cursor < r.end) this.cursor = r.end;
      this.reservedIdx++;
    }
    if (this.cursor >= this.layout.blocksCount) {
      throw new CloudletsError(
        'EOUTPUT',
        `the content does not fit in a ${this.layout.blocksCount * BLOCK_SIZE}-byte ext4 filesystem`,
        {
          where: this.currentPath,
          hint: 'give a larger size, or size it with estimateExt4Size (--size auto)',
        },
      );
    }
    const next = reserved[this.reservedIdx];
    return Math.min(next ? next.start : this.layout.blocksCount, this.layout.blocksCount) - this.cursor;
  }

  private async write(block: number, data: Buffer): Promise<void> {
    await this.target.write(this.offset + block * BLOCK_SIZE, data);
  }

  /**
   * Starts writing the staged run without waiting for it, so reading the source and writing the target
   * overlap. The run's buffer is reused only once its write has completed. Never waits: the callers
   * (`throttle`) wait between entries, so that the work of one entry is plain synchronous code.
   */
  private sendStage(): void {
    if (this.stageCount > 0) {
      const buf = this.stage;
      const data = buf.subarray(0, this.stageCount * BLOCK_SIZE);
      const start = this.stageStart;
      this.stage = this.spareStages.pop() ?? takeBuffer(STAGE_BYTES);
      this.stageCount = 0;
      this.inflight.push(
        this.write(start, data).then(
          // Written: the target is done with it (BlockTarget.write), so it stages the next runs.
          () => {
            this.spareStages.push(buf);
          },
          (err: unknown) => {
            this.failure ??= err;
          },
        ),
      );
    }
  }

  /** True when the writer should wait (`throttle`) before going on: too many writes on their way. */
  private get congested(): boolean {
    return this.inflight.length > MAX_INFLIGHT;
  }

  /** Waits until at most MAX_INFLIGHT runs are on their way; throws a write's failure. */
  private async throttle(): Promise<void> {
    while (this.inflight.length > MAX_INFLIGHT) await this.inflight.shift();
    if (this.failure !== undefined) throw this.failure;
  }

  /** Waits for the writes in flight, ignoring their outcome (used on the way out of an error). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.inflight);
    this.inflight = [];
  }

  /** Waits for every write started so far. */
  private async drain(): Promise<void> {
    this.sendStage();
    await Promise.all(this.inflight);
    this.inflight = [];
    if (this.failure !== undefined) throw this.failure;
  }

  /** Queues one block at `phys`, sending the staged run first when the block does not continue it. */
  private stageBlock(phys: number, data: Buffer, at = 0): void {
    if (
      this.stageCount > 0 &&
      (phys !== this.stageStart + this.stageCount || this.stageCount === STAGE_BLOCKS)
    ) {
      this.sendStage();
    }
    if (this.stageCount === 0) this.stageStart = phys;
    data.copy(this.stage, this.stageCount * BLOCK_SIZE, at, at + BLOCK_SIZE);
    this.stageCount++;
  }

  /** Allocates and writes `blocks` contiguously where possible; returns their extents from logical 0. */
  private writeBlocks(blocks: Buffer[]): Extent[] {
    const extents: Extent[] = [];
    for (let i = 0; i < blocks.length; i++) {
      const phys = this.allocBlock();
      addRun(extents, i, phys, 1);
      this.stageBlock(phys, blocks[i] as Buffer);
    }
    return extents;
  }

  /** Builds (and writes) the extent tree of `ino`; returns the number of tree blocks. */
  private mapExtents(ino: number, inode: Buffer, extents: Extent[]): number {
    if (writeInlineExtents(inode, 0x28, extents)) {
      inode.writeUInt32LE(inode.readUInt32LE(0x20) | EXT4_EXTENTS_FL, 0x20);
      return 0;
    }
    const tree = buildExtentTree(extents, () => this.allocBlock(), inodeCsumSeed(this.fsSeed, ino));
    for (const b of tree.blocks) this.stageBlock(b.block, b.data);
    tree.iblock.copy(inode, 0x28);
    inode.writeUInt32LE(inode.readUInt32LE(0x20) | EXT4_EXTENTS_FL, 0x20);
    return tree.blocks.length;
  }

  async writeJournal(): Promise<void> {
    const l = this.layout;
    if (l.journalBlocks === 0) return;
    const inode = this.ownInode(JOURNAL_INO, S_IFREG | 0o600);
    setLinks(inode, 1);
    setInodeSize(inode, l.journalBlocks * BLOCK_SIZE);
    const extents: Extent[] = [];
    let logical = 0;
    for (const r of l.journalRuns) {
      for (let p = r.start; p < r.end; p += MAX_EXTENT_LEN) {
        const length = Math.min(MAX_EXTENT_LEN, r.end - p);
        extents.push({ logical, physical: p, length });
        logical += length;
      }
    }
    const treeBlocks = this.mapExtents(JOURNAL_INO, inode, extents);
    setInodeBlocks(inode, l.journalBlocks + treeBlocks);
    this.journalIBlock = Buffer.from(inode.subarray(0x28, 0x28 + 60));
    await this.write(
      (l.journalRuns[0] as Range).start,
      encodeJournalSuperblock(this.opts.uuid, l.journalBlocks),
    );
  }

  /** Base fields and xattrs of a new inode; returns the number of xattr blocks (0 or 1). */
  private initInode(ino: number, e: Entry, typeBits: number): number {
    const inode = this.inode(ino);
    writeInodeBase(inode, {
      mode: typeBits | (e.mode & 0o7777),
      uid: e.uid,
      gid: e.gid,
      mtimeNs: e.mtimeNs,
      flags: 0,
    });
    setLinks(inode, 1);
    const x = e.xattrs.size === 0 ? NO_XATTRS : encodeXattrs(e.xattrs, this.currentPath);
    if (x.inInode) x.inInode.copy(inode, IN_INODE_XATTR_OFFSET);
    if (!x.block) return 0;
    const block = this.allocBlock();
    sealXattrBlock(x.block, block, this.fsSeed);
    this.stageBlock(block, x.block);
    setInodeFileAcl(inode, block);
    return 1;
  }

  /** The directory the current entry goes in (its last `/` at `slash`), which must be open. */
  private parentDir(path: Buffer, slash: number): OpenDir {
    const parent = this.dirs.parentOf(path, slash);
    if (parent) return parent;
    const where = slash === 0 ? '/' : path.subarray(0, slash).toString('utf8');
    throw new CloudletsError('ESOURCE', `parent directory ${where} is missing or not a directory`, {
      where: this.currentPath,
      hint: 'entries must come sorted by path, each directory before its content',
    });
  }

  private finishDir(d: OpenDir): void {
    const { blocks, indexed } = buildDirBlocks(d.ino, d.parentIno, d.children, {
      csumSeed: inodeCsumSeed(this.fsSeed, d.ino),
      hashSeed: this.hashSeed,
      minBlocks: d.minBlocks,
      where: d.path.toString('utf8'),
    });
    d.children = [];
    const extents = this.writeBlocks(blocks);
    const inode = this.inode(d.ino);
    if (indexed) inode.writeUInt32LE(inode.readUInt32LE(0x20) | EXT4_INDEX_FL, 0x20);
    const treeBlocks = this.mapExtents(d.ino, inode, extents);
    setInodeSize(inode, blocks.length * BLOCK_SIZE);
    setInodeBlocks(inode, blocks.length + treeBlocks + d.extraBlocks);
    const links = 2 + d.subdirs;
    setLinks(inode, links > MAX_LINKS ? 1 : links);
  }

  /** An inode the filesystem makes itself (root, lost+found, journal): root's, at the filesystem's time. */
  private ownInode(ino: number, mode: number): Buffer {
    const inode = this.inode(ino);
    writeInodeBase(inode, {
      mode,
      uid: 0,
      gid: 0,
      mtimeNs: BigInt(this.opts.timestampSec) * 1_000_000_000n,
      flags: 0,
    });
    return inode;
  }

  private rootFromDefaults(): OpenDir {
    this.ownInode(ROOT_INO, S_IFDIR | 0o755);
    this.usedDirs[0] = (this.usedDirs[0] as number) + 1;
    const root: OpenDir = {
      path: ROOT_PATH,
      ino: ROOT_INO,
      parentIno: ROOT_INO,
      children: [],
      subdirs: 0,
      extraBlocks: 0,
      minBlocks: 1,
    };
    this.dirs.open(root);
    return root;
  }

  /** The last entry's path: entries must come sorted. */
  private lastPath: Buffer | undefined;

  async consume(entries: EntryStream): Promise<void> {
    // A batch at a time, in a function of its own: optimized while the first batch runs (on-stack
    // replacement), one loop over the stream would meet the stream's next() with no type feedback for it
    // and be thrown away there, to be compiled again (seen with --trace-deopt).
    for await (const item of entries) await this.consumeBatch(asBatch(item));
    this.finishTree();
  }

  private async consumeBatch(batch: readonly Entry[]): Promise<void> {
    let last = this.lastPath;
    for (const e of batch) {
      // A failed write (an interrupt among them) stops the writer at the next entry.
      if (this.failure !== undefined) throw this.failure;
      if (this.congested) await this.throttle();
      const path = e.path;
      this.currentEntry = path;
      if (last && comparePaths(last, path) >= 0) {
        throw new CloudletsError('ESOURCE', 'entries are not sorted by path (or repeat a path)', {
          where: this.currentPath,
        });
      }
      last = path;
      if (path.length === 1 && path[0] === SLASH) {
        if (this.dirs.depth > 0)
          throw new CloudletsError('ESOURCE', 'the root entry comes twice', { where: this.currentPath });
        if (e.type !== 'dir')
          throw new CloudletsError('ESOURCE', 'the root entry is not a directory', {
            where: this.currentPath,
          });
        const root = this.rootFromDefaults();
        root.extraBlocks = this.initInode(ROOT_INO, e, S_IFDIR);
        setLinks(this.inode(ROOT_INO), 2);
        continue;
      }
      if (this.dirs.depth === 0) this.rootFromDefaults();
      if (path[0] !== SLASH || path[path.length - 1] === SLASH)
        throw new CloudletsError('ESOURCE', 'malformed image path', { where: this.currentPath });
      const slash = path.lastIndexOf(SLASH);
      const parent = this.parentDir(path, slash);
      const name = path.subarray(slash + 1);
      if (
        name.length === 0 ||
        name.length > 255 ||
        name.includes(0) ||
        name.equals(DOT) ||
        name.equals(DOT_DOT)
      ) {
        throw new CloudletsError('ENOTSUP', 'ext4 names are 1 to 255 bytes, without NUL, and not . or ..', {
          where: this.currentPath,
        });
      }
      const isLostFound = path.equals(LOST_FOUND_PATH);
      if (isLostFound) this.lostFoundSeen = true;
      if (e.type === 'hardlink') {
        if (isLostFound)
          throw new CloudletsError('ENOTSUP', '/lost+found cannot be a hard link on ext4', {
            where: this.currentPath,
          });
        if (!this.nonDirs) {
          throw new CloudletsError('ESOURCE', 'a hard link in entries said to have none', {
            where: this.currentPath,
          });
        }
        const ino = e.linkTarget ? this.nonDirs.get(e.linkTarget.toString('latin1')) : undefined;
        if (ino === undefined) {
          throw new CloudletsError(
            'ESOURCE',
            'hard link to a path that is not an earlier non-directory entry',
            {
              where: this.currentPath,
              hint: e.linkTarget ? `target ${e.linkTarget.toString('utf8')}` : 'the entry has no link target',
            },
          );
        }
        const inode = this.inode(ino);
        const links = getLinks(inode) + 1;
        if (links > MAX_LINKS)
          throw new CloudletsError('ENOTSUP', `more than ${MAX_LINKS} hard links to one file`, {
            where: this.currentPath,
          });
        setLinks(inode, links);
        parent.children.push({ name, ino, fileType: fileTypeOf(inode.readUInt16LE(0)) });
        this.nonDirs.set(path.toString('latin1'), ino);
        continue;
      }
      const ino = isLostFound ? LOST_FOUND_INO : this.allocInode();
      if (e.type === 'dir') {
        const extraBlocks = this.initInode(ino, e, S_IFDIR);
        parent.children.push({ name, ino, fileType: FT_DIR });
        parent.subdirs++;
        const g = Math.floor((ino - 1) / this.ipg);
        this.usedDirs[g] = (this.usedDirs[g] as number) + 1;
        this.dirs.open({
          path: e.path,
          ino,
          parentIno: parent.ino,
          children: [],
          subdirs: 0,
          extraBlocks,
          minBlocks: isLostFound ? 4 : 1,
        });
        continue;
      }
      let typeBits: number;
      switch (e.type) {
        case 'file':
          typeBits = S_IFREG;
          break;
        case 'symlink':
          typeBits = S_IFLNK;
          break;
        case 'char':
          typeBits = S_IFCHR;
          break;
        case 'block':
          typeBits = S_IFBLK;
          break;
        case 'fifo':
          typeBits = S_IFIFO;
          break;
        case 'socket':
          typeBits = S_IFSOCK;
          break;
        default:
          throw new CloudletsError('ENOTSUP', `unknown entry type ${String(e.type)}`, {
            where: this.currentPath,
          });
      }
      const extra = this.initInode(ino, e, typeBits);
      const inode = this.inode(ino);
      if (e.type === 'file') {
        const writing = this.writeFile(ino, inode, e, extra);
        if (writing) await writing;
      } else if (e.type === 'symlink') this.writeSymlink(ino, inode, e, extra);
      else {
        if (e.type === 'char' || e.type === 'block') writeDevice(inode, e.devMajor ?? 0, e.devMinor ?? 0);
        setInodeBlocks(inode, extra);
      }
      parent.children.push({ name, ino, fileType: fileTypeOf(typeBits) });
      this.nonDirs?.set(path.toString('latin1'), ino);
    }
    this.lastPath = last;
    if (this.congested) await this.throttle();
  }

  /** After the last entry: the directories still open, and lost+found if the entries had none. */
  private finishTree(): void {
    if (this.dirs.depth === 0) this.rootFromDefaults();
    const root = this.dirs.closeAllButRoot() as OpenDir;
    if (!this.lostFoundSeen) {
      this.ownInode(LOST_FOUND_INO, S_IFDIR | 0o700);
      root.children.unshift({ name: Buffer.from('lost+found'), ino: LOST_FOUND_INO, fileType: FT_DIR });
      root.subdirs++;
      this.usedDirs[0] = (this.usedDirs[0] as number) + 1;
      this.finishDir({
        path: LOST_FOUND_PATH,
        ino: LOST_FOUND_INO,
        parentIno: ROOT_INO,
        children: [],
        subdirs: 0,
        extraBlocks: 0,
        minBlocks: 4,
      });
    }
    this.finishDir(root);
  }

  /**
   * A regular file's content and extents. Content read synchronously (a directory's files) is written
   * without a promise unless the writes in flight make it wait (a large file): then the rest is copied
   * asynchronously, and the promise is returned.
   */
  private writeFile(ino: number, inode: Buffer, e: Entry, extraBlocks: number): Promise<void> | undefined {
    if (e.size > MAX_FILE_SIZE) {
      throw new CloudletsError(
        'ENOTSUP',
        `a file of ${e.size} bytes exceeds ext4's 16 TiB limit with 4 KiB blocks`,
        { where: this.currentPath },
      );
    }
    if (e.size > 0 && e.openContentSync) {
      const copy: FileCopy = {
        reader: e.openContentSync(),
        size: e.size,
        blocks: Math.ceil(e.size / BLOCK_SIZE),
        extents: [],
        done: 0,
        logical: 0,
        dataBlocks: 0,
      };
      let complete: boolean;
      try {
        complete = this.copySome(copy);
      } catch (err) {
        copy.reader.close(-1);
        throw err;
      }
      if (!complete) return this.copyRest(copy, ino, inode, extraBlocks);
      copy.reader.close(copy.done);
      this.completeFile(ino, inode, e.size, copy.extents, copy.dataBlocks, extraBlocks);
      return undefined;
    }
    if (e.size > 0) return this.writeStreamed(ino, inode, e, extraBlocks);
    this.completeFile(ino, inode, 0, [], 0, extraBlocks);
    return undefined;
  }

  /** The rest of a copy that had to wait for writes in flight. */
  private async copyRest(copy: FileCopy, ino: number, inode: Buffer, extraBlocks: number): Promise<void> {
    try {
      do await this.throttle();
      while (!this.copySome(copy));
    } catch (err) {
      copy.reader.close(-1);
      throw err;
    }
    copy.reader.close(copy.done);
    this.completeFile(ino, inode, copy.size, copy.extents, copy.dataBlocks, extraBlocks);
  }

  /** Maps a file's extents and sets its size and block count. */
  private completeFile(
    ino: number,
    inode: Buffer,
    size: number,
    extents: Extent[],
    dataBlocks: number,
    extraBlocks: number,
  ): void {
    const treeBlocks = this.mapExtents(ino, inode, extents);
    setInodeSize(inode, size);
    setInodeBlocks(inode, dataBlocks + treeBlocks + extraBlocks);
  }

  /** Content that comes as chunks (a tar archive's, a rendered template's). */
  private async writeStreamed(ino: number, inode: Buffer, e: Entry, extraBlocks: number): Promise<void> {
    const extents: Extent[] = [];
    let logical = 0;
    let total = 0;
    let dataBlocks = 0;
    const partial = this.partial;
    let fill = 0;
    // `src` holds the block at `at`; no per-block subarray, this runs for every 4 KiB of content.
    const place = (src: Buffer, at: number): void => {
      if (isZeroBlock(src, at)) {
        // All-zero blocks become holes: sparse files stay sparse, and zeros cost no space.
        logical++;
        return;
      }
      const phys = this.allocBlock();
      addRun(extents, logical, phys, 1);
      logical++;
      dataBlocks++;
      this.stageBlock(phys, src, at);
    };
    if (!e.content)
      throw new CloudletsError('ESOURCE', 'file entry has a size but no content', {
        where: this.currentPath,
      });
    for await (const chunk of e.content()) {
      total += chunk.length;
      if (total > e.size) break;
      let off = 0;
      while (off < chunk.length) {
        if (fill === 0 && chunk.length - off >= BLOCK_SIZE) {
          place(chunk, off);
          off += BLOCK_SIZE;
        } else {
          const n = Math.min(BLOCK_SIZE - fill, chunk.length - off);
          chunk.copy(partial, fill, off, off + n);
          fill += n;
          off += n;
          if (fill === BLOCK_SIZE) {
            place(partial, 0);
            fill = 0;
          }
        }
      }
      if (this.congested) await this.throttle();
    }
    if (total !== e.size) {
      throw new CloudletsError(
        'ESOURCE',
        `file content is ${total > e.size ? 'longer' : 'shorter'} than its size ${e.size}`,
        {
          where: this.currentPath,
          hint: 'the file changed while the image was read',
        },
      );
    }
    if (fill > 0) {
      partial.fill(0, fill);
      place(partial, 0);
    }
    this.completeFile(ino, inode, e.size, extents, dataBlocks, extraBlocks);
  }

  /**
   * The fast path for sources that read synchronously (a directory): content is read straight into the
   * staging buffer at the blocks it will occupy, with no chunk buffers, copies or promises per read.
   * All-zero blocks become holes, as in the streamed path, so both give the same filesystem. Goes on
   * from where `copy` stands; returns false when it stopped because too many writes are on their way
   * (the caller waits and calls again), true when the whole file is in. The caller closes the reader,
   * which checks that the file kept its size.
   */
  private copySome(copy: FileCopy): boolean {
    const { reader, size, blocks, extents } = copy;
    while (copy.logical < blocks) {
      let room = this.skipReserved();
      if (
        this.stageCount > 0 &&
        (this.cursor !== this.stageStart + this.stageCount || this.stageCount === STAGE_BLOCKS)
      ) {
        this.sendStage();
        if (this.congested || this.failure !== undefined) return false;
        room = this.skipReserved();
      }
      if (this.stageCount === 0) this.stageStart = this.cursor;
      const first = this.stageCount;
      const n = Math.min(blocks - copy.logical, STAGE_BLOCKS - first, room);
      const base = first * BLOCK_SIZE;
      const want = Math.min(n * BLOCK_SIZE, size - copy.done);
      const stage = this.stage;
      let got = 0;
      while (got < want) {
        const r = reader.read(stage, base + got, want - got, copy.done + got);
        if (r === 0) break;
        got += r;
      }
      if (got < want) {
        throw new CloudletsError('ESOURCE', `file content is shorter than its size ${size}`, {
          where: this.currentPath,
          hint: 'the file changed while the image was read',
        });
      }
      copy.done += got;
      if (got < n * BLOCK_SIZE) stage.fill(0, base + got, base + n * BLOCK_SIZE);
      // Blocks read land at stage slots first..first+n; holes are squeezed out so that the slots stay
      // the contiguous physical blocks the allocator hands out (`room` guarantees no metadata between).
      // `room` blocks from the cursor are free and contiguous, so the blocks kept take the next ones in
      // turn, and go into the extents as runs rather than one block at a time.
      let w = first;
      let runLogical = 0;
      let runLength = 0;
      for (let j = first; j < first + n; j++) {
        const at = j * BLOCK_SIZE;
        const l = copy.logical++;
        if (isZeroBlock(stage, at)) continue;
        if (w !== j) stage.copyWithin(w * BLOCK_SIZE, at, at + BLOCK_SIZE);
        if (runLength > 0 && runLogical + runLength === l) runLength++;
        else {
          if (runLength > 0) addRun(extents, runLogical, this.cursor - runLength, runLength);
          runLogical = l;
          runLength = 1;
        }
        this.cursor++;
        copy.dataBlocks++;
        w++;
      }
      if (runLength > 0) addRun(extents, runLogical, this.cursor - runLength, runLength);
      this.stageCount = w;
    }
    return true;
  }

  private writeSymlink(ino: number, inode: Buffer, e: Entry, extraBlocks: number): void {
    const t = e.linkTarget;
    if (!t || t.length === 0 || t.length >= BLOCK_SIZE || t.includes(0)) {
      throw new CloudletsError('ENOTSUP', 'symlink targets on ext4 are 1 to 4095 bytes without NUL', {
        where: this.currentPath,
      });
    }
    setInodeSize(inode, t.length);
    if (t.length < 60) {
      // Fast symlink: the target lives in i_block.
      t.copy(inode, 0x28);
      setInodeBlocks(inode, extraBlocks);
      return;
    }
    const block = Buffer.alloc(BLOCK_SIZE);
    t.copy(block);
    const extents = this.writeBlocks([block]);
    const treeBlocks = this.mapExtents(ino, inode, extents);
    setInodeBlocks(inode, 1 + treeBlocks + extraBlocks);
  }

  async finish(label: Buffer): Promise<Ext4Result> {
    await this.drain();
    const l = this.layout;
    const ipg = this.ipg;
    const lastIno = this.nextIno - 1;
    const writes: { block: number; at?: number; data: Buffer }[] = [];
    const gdt = Buffer.alloc(l.gdtBlocks * BLOCK_SIZE);
    let freeBlocksTotal = 0;
    let freeInodesTotal = 0;
    let reservedIdx = 0;
    for (let g = 0; g < l.groupCount; g++) {
      const gl = l.groups[g] as GroupLayoutLike;
      const gStart = g * BLOCKS_PER_GROUP;
      const gEnd = Math.min(gStart + BLOCKS_PER_GROUP, l.blocksCount);
      const gBlocks = gEnd - gStart;
      // Blocks in use: everything the ascending allocator passed, plus the metadata laid out in advance.
      const bbm = Buffer.alloc(BLOCK_SIZE);
      if (this.cursor > gStart) setBits(bbm, 0, Math.min(this.cursor, gEnd) - gStart);
      while (reservedIdx < l.reserved.length && (l.reserved[reservedIdx] as Range).end <= gStart)
        reservedIdx++;
      for (let i = reservedIdx; i < l.reserved.length; i++) {
        const r = l.reserved[i] as Range;
        if (r.start >= gEnd) break;
        setBits(bbm, Math.max(r.start, gStart) - gStart, Math.min(r.end, gEnd) - gStart);
      }
      const freeBlocks = gBlocks - countBits(bbm, gBlocks);
      setBits(bbm, gBlocks, BLOCKS_PER_GROUP); // padding past the end of a short last group
      const used = Math.max(0, Math.min(ipg, lastIno - g * ipg));
      const ibm = Buffer.alloc(BLOCK_SIZE);
      setBits(ibm, 0, used);
      setBits(ibm, ipg, BLOCK_SIZE * 8);
      freeBlocksTotal += freeBlocks;
      freeInodesTotal += ipg - used;
      encodeGroupDesc(
        gdt,
        g * DESC_SIZE,
        g,
        {
          blockBitmap: gl.blockBitmap,
          inodeBitmap: gl.inodeBitmap,
          inodeTable: gl.inodeTable,
          freeBlocks,
          freeInodes: ipg - used,
          usedDirs: this.usedDirs[g] as number,
          flags: BG_INODE_ZEROED,
          blockBitmapCsum: crc32cRaw(this.fsSeed, bbm),
          inodeBitmapCsum: crc32cRaw(this.fsSeed, ibm.subarray(0, ipg / 8)),
          itableUnused: ipg - used,
        },
        this.fsSeed,
      );
      writes.push({ block: gl.blockBitmap, data: bbm }, { block: gl.inodeBitmap, data: ibm });
      for (let s = 0; this.tables.has(g) && s * SLAB_INODES < used; s++) {
        const slab = this.slab(g, s);
        const count = Math.min(SLAB_INODES, used - s * SLAB_INODES);
        for (let i = 0; i < count; i++) {
          const ino = slab.subarray(i * INODE_SIZE, (i + 1) * INODE_SIZE);
          // Reserved inodes nobody uses stay all-zero, which e2fsck accepts without a checksum.
          if (ino.readUInt16LE(0) !== 0 || ino.readUInt16LE(0x1a) !== 0)
            setInodeChecksum(ino, this.fsSeed, g * ipg + s * SLAB_INODES + i + 1);
        }
        const bytes = Math.ceil(count / 16) * BLOCK_SIZE;
        writes.push({ block: gl.inodeTable + s * SLAB_BLOCKS, data: slab.subarray(0, bytes) });
      }
    }
    this.tables.clear();
    const sbFields = {
      layout: l,
      freeBlocks: freeBlocksTotal,
      freeInodes: freeInodesTotal,
      uuid: this.opts.uuid,
      hashSeed: this.opts.hashSeed,
      label,
      timestampSec: this.opts.timestampSec,
      journalIBlock: this.journalIBlock,
      journalSizeBytes: l.journalBlocks * BLOCK_SIZE,
    };
    for (let g = 0; g < l.groupCount; g++) {
      if (!(l.groups[g] as GroupLayoutLike).hasSuper) continue;
      const block = g * BLOCKS_PER_GROUP;
      writes.push({ block, at: g === 0 ? 1024 : 0, data: encodeSuperblock(sbFields, g) });
      writes.push({ block: block + 1, data: gdt });
    }
    writes.sort((a, b) => a.block - b.block || (a.at ?? 0) - (b.at ?? 0));
    for (const w of writes) await this.target.write(this.offset + w.block * BLOCK_SIZE + (w.at ?? 0), w.data);
    return {
      inodesUsed: lastIno,
      blocksUsed: l.blocksCount - freeBlocksTotal,
      blocksCount: l.blocksCount,
      sizeBytes: l.blocksCount * BLOCK_SIZE,
    };
  }
}

interface GroupLayoutLike {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  hasSuper: boolean;
}

/** True when the 4 KiB block at `at` is all zeros; most blocks of content are told by their ends alone. */
function isZeroBlock(buf: Buffer, at: number): boolean {
  if (buf[at] !== 0 || buf[at + BLOCK_SIZE - 1] !== 0) return false;
  return buf.compare(ZERO_BLOCK, 0, BLOCK_SIZE, at, at + BLOCK_SIZE) === 0;
}

/** Maps `length` blocks from `logical` to `phys` on, extending the last extent while it continues and has room. */
function addRun(extents: Extent[], logical: number, phys: number, length: number): void {
  let l = logical;
  let p = phys;
  let rest = length;
  const last = extents[extents.length - 1];
  if (last && last.logical + last.length === l && last.physical + last.length === p) {
    const n = Math.min(rest, MAX_EXTENT_LEN - last.length);
    last.length += n;
    l += n;
    p += n;
    rest -= n;
  }
  while (rest > 0) {
    const n = Math.min(rest, MAX_EXTENT_LEN);
    extents.push({ logical: l, physical: p, length: n });
    l += n;
    p += n;
    rest -= n;
  }
}
