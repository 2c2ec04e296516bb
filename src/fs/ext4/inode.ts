/**
 * 256-byte inodes: the base 128 bytes, 32 extra bytes (nanosecond times, crtime, checksum high half)
 * and 96 bytes for in-inode extended attributes. Offsets follow Documentation/filesystems/ext4/inodes.rst.
 */
import { crc32cRaw, crc32cU32 } from '../crc32c.js';
import { INODE_SIZE } from './layout.js';
import { EXTRA_ISIZE } from './superblock.js';

export const S_IFIFO = 0x1000;
export const S_IFCHR = 0x2000;
export const S_IFDIR = 0x4000;
export const S_IFBLK = 0x6000;
export const S_IFREG = 0x8000;
export const S_IFLNK = 0xa000;
export const S_IFSOCK = 0xc000;

export const EXT4_EXTENTS_FL = 0x80000;
/** A directory with a hash tree index. */
export const EXT4_INDEX_FL = 0x1000;

/** Where the inode's xattr area (magic + entries + values) starts, and how long it is. */
export const IN_INODE_XATTR_OFFSET = 128 + EXTRA_ISIZE;
export const IN_INODE_XATTR_SIZE = INODE_SIZE - IN_INODE_XATTR_OFFSET;

export interface InodeBase {
  mode: number; // including the S_IF* type bits
  uid: number;
  gid: number;
  mtimeNs: bigint;
  flags: number;
}

/**
 * The last time encoded, as ext4 stores it: the files of a tree mostly share a few times, and this runs
 * for every inode. Plain variables, not an object made per time: a tree of distinct times made one each.
 */
let lastNs = 0n;
let lastBase = 0;
let lastExtra = 0;

/**
 * Seconds split the ext4 way, into lastBase and lastExtra: 32 low bits in the base field, 2 epoch bits +
 * nanoseconds in the extra one.
 */
function encodeTime(ns: bigint): void {
  // Two BigInt operations, then plain numbers: seconds fit a double exactly (|sec| < 2^53), and this
  // runs for every inode whose time differs from the one before.
  let sec = Number(ns / 1_000_000_000n);
  let nsec = Number(ns % 1_000_000_000n);
  if (nsec < 0) {
    nsec += 1_000_000_000;
    sec -= 1;
  }
  const low = sec | 0; // the low 32 bits, signed
  const epoch = ((sec - low) / 2 ** 32) & 3;
  lastNs = ns;
  lastBase = sec >>> 0;
  lastExtra = ((nsec << 2) | epoch) >>> 0;
}

/** Fills the fields every inode type shares; size, links, blocks and i_block come later. */
export function writeInodeBase(ino: Buffer, b: InodeBase): void {
  ino.writeUInt16LE(b.mode & 0xffff, 0x0);
  ino.writeUInt16LE(b.uid & 0xffff, 0x2);
  ino.writeUInt16LE(b.gid & 0xffff, 0x18);
  ino.writeUInt16LE(b.uid >>> 16, 0x78);
  ino.writeUInt16LE(b.gid >>> 16, 0x7a);
  if (lastNs !== b.mtimeNs) encodeTime(b.mtimeNs);
  const base = lastBase;
  const extra = lastExtra;
  // atime, ctime, mtime and crtime all take the entry's mtime: the only time an image records.
  ino.writeUInt32LE(base, 0x8);
  ino.writeUInt32LE(extra, 0x8c);
  ino.writeUInt32LE(base, 0xc);
  ino.writeUInt32LE(extra, 0x84);
  ino.writeUInt32LE(base, 0x10);
  ino.writeUInt32LE(extra, 0x88);
  ino.writeUInt32LE(base, 0x90);
  ino.writeUInt32LE(extra, 0x94);
  ino.writeUInt32LE(b.flags >>> 0, 0x20);
  ino.writeUInt16LE(EXTRA_ISIZE, 0x80);
}

export function setInodeSize(ino: Buffer, size: number): void {
  ino.writeUInt32LE(size % 2 ** 32, 0x4);
  ino.writeUInt32LE(Math.floor(size / 2 ** 32), 0x6c);
}

/** i_blocks counts 512-byte sectors (huge_file allows 48 bits without the per-inode flag). */
export function setInodeBlocks(ino: Buffer, fsBlocks: number): void {
  const sectors = fsBlocks * 8;
  ino.writeUInt32LE(sectors % 2 ** 32, 0x1c);
  ino.writeUInt16LE(Math.floor(sectors / 2 ** 32), 0x74);
}

export function setInodeFileAcl(ino: Buffer, block: number): void {
  ino.writeUInt32LE(block % 2 ** 32, 0x68);
  ino.writeUInt16LE(Math.floor(block / 2 ** 32), 0x76);
}

export function getLinks(ino: Buffer): number {
  return ino.readUInt16LE(0x1a);
}

export function setLinks(ino: Buffer, n: number): void {
  ino.writeUInt16LE(n, 0x1a);
}

/** The per-inode checksum seed metadata blocks of that inode use (extent blocks, directory blocks). */
export function inodeCsumSeed(fsSeed: number, inum: number, generation = 0): number {
  return crc32cU32(crc32cU32(fsSeed, inum), generation);
}

/** Sets i_checksum_lo/hi: crc32c over the whole inode with both fields zeroed. */
export function setInodeChecksum(ino: Buffer, fsSeed: number, inum: number): void {
  ino.writeUInt16LE(0, 0x7c);
  ino.writeUInt16LE(0, 0x82);
  const crc = crc32cRaw(inodeCsumSeed(fsSeed, inum, ino.readUInt32LE(0x64)), ino);
  ino.writeUInt16LE(crc & 0xffff, 0x7c);
  ino.writeUInt16LE(crc >>> 16, 0x82);
}

/** Old (8+8 bit) or new (12+20 bit) device number encoding in i_block, as the kernel chooses. */
export function writeDevice(ino: Buffer, major: number, minor: number): void {
  if (major < 256 && minor < 256) {
    ino.writeUInt32LE(((major << 8) | minor) >>> 0, 0x28);
  } else {
    ino.writeUInt32LE(((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0, 0x2c);
  }
}
