// Reading git's index (`.git/index`) for its stat cache: which tracked files a commit must hand to git
// again, without `git add -u` walking the tree a second time beside our own walk.
//
// Written here rather than taken from a library: the only readers on npm are whole git implementations
// (isomorphic-git), and what is needed is one pass over a documented layout (gitformat-index(5)),
// versions 2 and 3, SHA-1. Anything else (version 4's compressed names, another hash, a layout that does
// not add up) makes `readGitIndex` return undefined and the caller lets git do the refresh itself.
//
// The comparison is deliberately stricter than git's own (`ce_match_stat`): every field git may compare,
// compared always. So a path called unchanged here is unchanged for git too; any doubt (a racily clean
// entry, a flag, a conflict) hands the path to git, which decides as `git add` would.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { HostStat } from '../stream/entry.js';

const SIGNATURE = 0x44495243; // "DIRC"
const HASH_BYTES = 20;
/** ctime, mtime (sec, nsec each), dev, ino, mode, uid, gid, size: ten 32-bit fields, then the hash. */
const FIXED = 40 + HASH_BYTES + 2;
const EXTENDED = 0x4000;
const ASSUME_VALID = 0x8000;
const STAGE_MASK = 0x3000;
const NAME_MASK = 0x0fff;

export interface GitIndex {
  /** Entry count, in the index's order: by the bytes of their paths (then stage). */
  readonly length: number;
  /** The entry's path (repository path, no leading slash), as a view into the index's bytes. */
  path(i: number): Buffer;
  /**
   * The position of `imagePath` (an image path: its repository path after the leading slash), or -1.
   * Queries in increasing order (the walk's) cost a cursor step each; one out of order searches again.
   */
  find(imagePath: Buffer): number;
  /** True when git would find the file as it was staged, without reading it (and is not racily clean). */
  unchanged(i: number, stat: HostStat): boolean;
}

/** The index of a repository, or undefined when it is missing or in a form this reader does not take. */
export function readGitIndex(file: string): GitIndex | undefined {
  let bytes: Buffer;
  let indexMtime: [number, number];
  try {
    const fd = openSync(file, 'r');
    try {
      const st = fstatSync(fd, { bigint: true });
      indexMtime = [Number(st.mtimeNs / 1_000_000_000n), Number(st.mtimeNs % 1_000_000_000n)];
      bytes = Buffer.allocUnsafe(Number(st.size));
      let got = 0;
      while (got < bytes.length) {
        const n = readSync(fd, bytes, got, bytes.length - got, got);
        if (n === 0) return undefined;
        got += n;
      }
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (bytes.length < 12 + HASH_BYTES || bytes.readUInt32BE(0) !== SIGNATURE) return undefined;
  const version = bytes.readUInt32BE(4);
  if (version !== 2 && version !== 3) return undefined;
  const count = bytes.readUInt32BE(8);
  const offsets = new Int32Array(count);
  const nameStarts = new Int32Array(count);
  const nameLengths = new Int32Array(count);
  let at = 12;
  const end = bytes.length - HASH_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + FIXED > end) return undefined;
    const flags = bytes.readUInt16BE(at + 40 + HASH_BYTES);
    let nameAt = at + FIXED;
    if (flags & EXTENDED) {
      if (version < 3) return undefined;
      nameAt += 2;
    }
    let nameLength = flags & NAME_MASK;
    if (nameLength === NAME_MASK) nameLength = bytes.indexOf(0, nameAt) - nameAt;
    if (nameLength < 0 || nameAt + nameLength >= end || bytes[nameAt + nameLength] !== 0) return undefined;
    offsets[i] = at;
    nameStarts[i] = nameAt;
    nameLengths[i] = nameLength;
    // Padded with 1 to 8 NUL bytes to a multiple of 8 from the entry's start.
    at += (nameAt - at + nameLength + 8) & ~7;
  }
  // Extensions: an optional one (upper-case signature: TREE, REUC, UNTR...) changes nothing here; any
  // other (`link`: a split index whose entries live in another file, `sdir`: a sparse index) does.
  while (at < end) {
    if (at + 8 > end) return undefined;
    const first = bytes[at]!;
    if (first < 0x41 || first > 0x5a) return undefined;
    at += 8 + bytes.readUInt32BE(at + 4);
  }
  if (at !== end) return undefined;
  return makeIndex(bytes, { offsets, nameStarts, nameLengths }, indexMtime);
}

/** Where each entry starts, and its name, found by readGitIndex's one pass over the entries. */
interface EntryPlaces {
  offsets: Int32Array;
  nameStarts: Int32Array;
  nameLengths: Int32Array;
}

function makeIndex(
  bytes: Buffer,
  { offsets, nameStarts, nameLengths }: EntryPlaces,
  [indexSec, indexNsec]: [number, number],
): GitIndex {
  const count = offsets.length;
  /** Compares entry i's path with the image path `p` from its byte 1 on, like Buffer.compare. */
  const compare = (i: number, p: Buffer) =>
    bytes.compare(p, 1, p.length, nameStarts[i]!, nameStarts[i]! + nameLengths[i]!);
  let cursor = 0;
  const u32 = (i: number, field: number) => bytes.readUInt32BE(offsets[i]! + field * 4);
  // git keeps 32 bits of seconds, sizes and inode numbers.
  const low32 = (n: number) => n % 2 ** 32;
  return {
    length: count,
    path(i) {
      return bytes.subarray(nameStarts[i]!, nameStarts[i]! + nameLengths[i]!);
    },
    find(p) {
      if (cursor > 0 && compare(cursor - 1, p) >= 0) {
        // Out of order: the first entry not before `p`, by bisection.
        let lo = 0;
        let hi = cursor - 1;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (compare(mid, p) < 0) lo = mid + 1;
          else hi = mid;
        }
        cursor = lo;
      }
      while (cursor < count && compare(cursor, p) < 0) cursor++;
      return cursor < count && compare(cursor, p) === 0 ? cursor : -1;
    },
    unchanged(i, st) {
      const flags = bytes.readUInt16BE(offsets[i]! + 40 + HASH_BYTES);
      if (flags & (ASSUME_VALID | EXTENDED | STAGE_MASK)) return false;
      const ceMode = u32(i, 6);
      const type = st.mode & 0o170000;
      if (ceMode === 0o120000) {
        if (type !== 0o120000) return false;
      } else if ((ceMode & 0o170000) === 0o100000) {
        if (type !== 0o100000 || (ceMode & 0o100) !== (st.mode & 0o100)) return false;
      } else {
        return false;
      }
      if (u32(i, 7) !== st.uid || u32(i, 8) !== st.gid || u32(i, 9) !== low32(st.size)) return false;
      const mSec = u32(i, 2);
      const mNsec = u32(i, 3);
      // Racily clean: written in the same instant as the index or later, so equal stat data proves nothing.
      if (mSec > indexSec || (mSec === indexSec && mNsec >= indexNsec)) return false;
      return (
        mSec === low32(st.mtimeSec) &&
        mNsec === st.mtimeNsec &&
        u32(i, 0) === low32(st.ctimeSec) &&
        u32(i, 1) === st.ctimeNsec &&
        u32(i, 5) === st.inoLow32
      );
    },
  };
}
