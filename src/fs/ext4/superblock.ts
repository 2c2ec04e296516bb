/**
 * The superblock and group descriptors (64-byte, 64bit feature), with their metadata_csum checksums.
 * Field offsets follow the kernel's Documentation/filesystems/ext4/super.rst and group_descr.rst.
 */
import { crc32cRaw, crc32cU32 } from '../crc32c.js';
import {
  BLOCK_SIZE,
  BLOCKS_PER_GROUP,
  DESC_SIZE,
  FIRST_INO,
  INODE_SIZE,
  type Layout,
  LOG_GROUPS_PER_FLEX,
} from './layout.js';

export const COMPAT_HAS_JOURNAL = 0x4;
export const COMPAT_EXT_ATTR = 0x8;
export const COMPAT_DIR_INDEX = 0x20;
export const INCOMPAT_FILETYPE = 0x2;
export const INCOMPAT_EXTENTS = 0x40;
export const INCOMPAT_64BIT = 0x80;
export const INCOMPAT_FLEX_BG = 0x200;
export const RO_COMPAT_SPARSE_SUPER = 0x1;
export const RO_COMPAT_LARGE_FILE = 0x2;
export const RO_COMPAT_HUGE_FILE = 0x8;
export const RO_COMPAT_DIR_NLINK = 0x20;
export const RO_COMPAT_EXTRA_ISIZE = 0x40;
export const RO_COMPAT_METADATA_CSUM = 0x400;

export const BG_INODE_ZEROED = 0x4;

export const EXTRA_ISIZE = 32;

export interface SuperblockFields {
  layout: Layout;
  freeBlocks: number;
  freeInodes: number;
  uuid: Buffer;
  hashSeed: Buffer;
  label: Buffer;
  timestampSec: number;
  /** The journal inode's i_block and size, backed up in s_jnl_blocks. */
  journalIBlock: Buffer | undefined;
  journalSizeBytes: number;
}

function u64(buf: Buffer, lo: number, hi: number, value: number): void {
  buf.writeUInt32LE(value % 2 ** 32, lo);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), hi);
}

/** A 32-bit group descriptor field stored as two 16-bit halves at `lo` and `hi`. */
function u32(buf: Buffer, lo: number, hi: number, value: number): void {
  buf.writeUInt16LE(value & 0xffff, lo);
  buf.writeUInt16LE(value >>> 16, hi);
}

/** The 1024-byte superblock as stored in group `groupNr` (only s_block_group_nr and the checksum differ). */
export function encodeSuperblock(f: SuperblockFields, groupNr: number): Buffer {
  const l = f.layout;
  const sb = Buffer.alloc(1024);
  sb.writeUInt32LE(l.inodesCount, 0x0);
  u64(sb, 0x4, 0x150, l.blocksCount);
  u64(sb, 0x8, 0x154, l.rootReservedBlocks);
  u64(sb, 0xc, 0x158, f.freeBlocks);
  sb.writeUInt32LE(f.freeInodes, 0x10);
  sb.writeUInt32LE(0, 0x14); // s_first_data_block: 0 with 4 KiB blocks
  sb.writeUInt32LE(2, 0x18); // log2(4096) - 10
  sb.writeUInt32LE(2, 0x1c);
  sb.writeUInt32LE(BLOCKS_PER_GROUP, 0x20);
  sb.writeUInt32LE(BLOCKS_PER_GROUP, 0x24);
  sb.writeUInt32LE(l.inodesPerGroup, 0x28);
  sb.writeUInt32LE(0, 0x2c); // s_mtime: never mounted
  sb.writeUInt32LE(f.timestampSec >>> 0, 0x30); // s_wtime
  sb.writeUInt16LE(0, 0x34);
  sb.writeUInt16LE(0xffff, 0x36); // s_max_mnt_count -1: no periodic check, like mke2fs
  sb.writeUInt16LE(0xef53, 0x38);
  sb.writeUInt16LE(1, 0x3a); // clean
  sb.writeUInt16LE(1, 0x3c); // errors=continue
  sb.writeUInt32LE(f.timestampSec >>> 0, 0x40); // s_lastcheck
  sb.writeUInt32LE(0, 0x48); // Linux
  sb.writeUInt32LE(1, 0x4c); // dynamic revision
  sb.writeUInt32LE(FIRST_INO, 0x54);
  sb.writeUInt16LE(INODE_SIZE, 0x58);
  sb.writeUInt16LE(groupNr, 0x5a);
  const hasJournal = l.journalBlocks > 0;
  sb.writeUInt32LE((hasJournal ? COMPAT_HAS_JOURNAL : 0) | COMPAT_EXT_ATTR | COMPAT_DIR_INDEX, 0x5c);
  sb.writeUInt32LE(INCOMPAT_FILETYPE | INCOMPAT_EXTENTS | INCOMPAT_64BIT | INCOMPAT_FLEX_BG, 0x60);
  sb.writeUInt32LE(
    RO_COMPAT_SPARSE_SUPER |
      RO_COMPAT_LARGE_FILE |
      RO_COMPAT_HUGE_FILE |
      RO_COMPAT_DIR_NLINK |
      RO_COMPAT_EXTRA_ISIZE |
      RO_COMPAT_METADATA_CSUM,
    0x64,
  );
  f.uuid.copy(sb, 0x68, 0, 16);
  f.label.copy(sb, 0x78, 0, Math.min(16, f.label.length));
  if (hasJournal) sb.writeUInt32LE(8, 0xe0); // s_journal_inum
  f.hashSeed.copy(sb, 0xec, 0, 16);
  sb.writeUInt8(1, 0xfc); // s_def_hash_version: half_md4, mke2fs' default
  sb.writeUInt8(hasJournal ? 1 : 0, 0xfd); // s_jnl_backup_type: EXT3_JNL_BACKUP_BLOCKS
  sb.writeUInt16LE(DESC_SIZE, 0xfe);
  sb.writeUInt32LE(0x000c, 0x100); // default mount options user_xattr,acl (mke2fs.conf default)
  sb.writeUInt32LE(f.timestampSec >>> 0, 0x108); // s_mkfs_time
  if (hasJournal && f.journalIBlock) {
    f.journalIBlock.copy(sb, 0x10c, 0, 60);
    sb.writeUInt32LE(Math.floor(f.journalSizeBytes / 2 ** 32), 0x10c + 60);
    sb.writeUInt32LE(f.journalSizeBytes % 2 ** 32, 0x10c + 64);
  }
  sb.writeUInt16LE(EXTRA_ISIZE, 0x15c); // s_min_extra_isize
  sb.writeUInt16LE(EXTRA_ISIZE, 0x15e); // s_want_extra_isize
  sb.writeUInt32LE(0x1, 0x160); // s_flags: signed directory hash, as mke2fs sets on x86
  sb.writeUInt8(LOG_GROUPS_PER_FLEX, 0x174);
  sb.writeUInt8(1, 0x175); // s_checksum_type: crc32c
  sb.writeUInt32LE(crc32cRaw(0xffffffff, sb.subarray(0, 0x3fc)), 0x3fc);
  return sb;
}

export interface GroupDescFields {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  freeBlocks: number;
  freeInodes: number;
  usedDirs: number;
  flags: number;
  blockBitmapCsum: number;
  inodeBitmapCsum: number;
  itableUnused: number;
}

/** Writes descriptor `g` into `out` at `at` (64 bytes), checksummed with the filesystem seed. */
export function encodeGroupDesc(
  out: Buffer,
  at: number,
  g: number,
  d: GroupDescFields,
  csumSeed: number,
): void {
  const b = out.subarray(at, at + DESC_SIZE);
  b.fill(0);
  u64(b, 0x0, 0x20, d.blockBitmap);
  u64(b, 0x4, 0x24, d.inodeBitmap);
  u64(b, 0x8, 0x28, d.inodeTable);
  u32(b, 0xc, 0x2c, d.freeBlocks);
  u32(b, 0xe, 0x2e, d.freeInodes);
  u32(b, 0x10, 0x30, d.usedDirs);
  b.writeUInt16LE(d.flags, 0x12);
  u32(b, 0x18, 0x38, d.blockBitmapCsum);
  u32(b, 0x1a, 0x3a, d.inodeBitmapCsum);
  u32(b, 0x1c, 0x32, d.itableUnused);
  const crc = crc32cRaw(crc32cU32(csumSeed, g), b);
  b.writeUInt16LE(crc & 0xffff, 0x1e);
}

/** The jbd2 v2 superblock of an empty, clean internal journal (big-endian, like all of jbd2). */
export function encodeJournalSuperblock(uuid: Buffer, journalBlocks: number): Buffer {
  const j = Buffer.alloc(BLOCK_SIZE);
  j.writeUInt32BE(0xc03b3998, 0x0);
  j.writeUInt32BE(4, 0x4); // JBD2_SUPERBLOCK_V2
  j.writeUInt32BE(0, 0x8);
  j.writeUInt32BE(BLOCK_SIZE, 0xc);
  j.writeUInt32BE(journalBlocks, 0x10); // s_maxlen
  j.writeUInt32BE(1, 0x14); // s_first
  j.writeUInt32BE(1, 0x18); // s_sequence
  j.writeUInt32BE(0, 0x1c); // s_start 0: nothing to replay
  uuid.copy(j, 0x30, 0, 16);
  j.writeUInt32BE(1, 0x40); // s_nr_users
  return j;
}
