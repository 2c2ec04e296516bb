/**
 * The directory walk by GNU find: one `find ROOT -printf` lists every path with what lstat says of it,
 * and the records are sorted here. Same records, same order as the walk thread (walk.ts), at a fraction
 * of the CPU: find does in C what the thread does in JavaScript, a BigInt stats object per path included
 * (measured on 10,000 paths: 20 ms of CPU for find against ~100 ms for the thread, plus the thread's
 * start and its optimizing compiler's work, on a machine where the export competes for 2 cores).
 *
 * What find cannot say, the walk thread does: when find is missing or is not GNU find (no -printf),
 * when it reports anything (a directory it cannot read, a path gone meanwhile), or when its listing
 * outgrows MAX_LISTING_BYTES, the walk is done again by the thread, which reports the failure exactly
 * where a walk meets it. The listing is held whole before it is sorted: memory grows with the number of
 * paths (the listing's text, ~150 bytes a path, plus 68 bytes of numbers and a path Buffer, ~100 bytes),
 * bounded by that limit. A path's record object is made only when it is handed out.
 *
 * Output format, per path: `TYPE PERM UID GID NLINK SIZE MTIME CTIME INO DEV PATH\0LINK\0`, where the
 * times are `%T@`/`%C@` (`SEC.NNNNNNNNN0`: find prints tv_sec, a dot and tv_nsec, even for times
 * before 1970: -1.5 s is `-2.5000000000`), PATH is the full path (`%p`) and LINK the symlink's target
 * (`%l`, empty for others). Numbers are decimal, PERM octal (the 12 permission bits).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { lstatSync } from 'node:fs';
import { plainToolEnv } from '../../util/tool-env.js';
import { sourceError } from './host-file.js';
import { type InodeKey, inodeKey, startWalk, type Walk, type WalkOptions, type WalkRecord } from './walk.js';

const FORMAT = '%y %m %U %G %n %s %T@ %C@ %i %D %p\\0%l\\0';
/** Listings larger than this (~500,000 paths) go to the walk thread, which streams in bounded memory. */
export const MAX_LISTING_BYTES = 64 * 1024 * 1024;
/** Records handed out at a time: about what a chunk of the walk thread holds. */
const BATCH = 512;

/** find's %y letters and the st_mode type bits they stand for. */
const TYPE_BITS: Record<string, number> = {
  f: 0o100000,
  d: 0o040000,
  l: 0o120000,
  c: 0o020000,
  b: 0o060000,
  p: 0o010000,
  s: 0o140000,
};
const TYPE_BY_BYTE = new Int32Array(128);
for (const [letter, bits] of Object.entries(TYPE_BITS)) TYPE_BY_BYTE[letter.charCodeAt(0)] = bits;

const NS = 1_000_000_000n;

/**
 * The numbers of each path of the listing, in two tables rather than an object per path: a build holds
 * the whole listing until it is sorted, and ten thousand objects made and kept alive meanwhile were
 * copied by each young-generation collection (V8's scavenger copies what survives) and then moved to
 * the old generation. INT_FIELDS 32-bit slots a path (uid and gid as their bits), and NUM_FIELDS
 * doubles for what may pass 2^31 (every one is exact as a double: below 2^53).
 */
const MODE = 0;
const UID = 1;
const GID = 2;
const NLINK = 3;
const MTIME_NSEC = 4;
const CTIME_NSEC = 5;
/** The record's chunk (an index into FoundPaths.chunks), and offsets in it (see FoundRecord). */
const CHUNK = 6;
const INO_AT = 7;
const DEV_AT = 8;
const DEV_END = 9;
const LINK_END = 10;
const INT_FIELDS = 11;
const SIZE = 0;
const MTIME_SEC = 1;
const CTIME_SEC = 2;
const NUM_FIELDS = 3;
const BLOCK_BITS = 10;
const BLOCK = 1 << BLOCK_BITS;

/** The paths of a listing: their numbers in a table, their image paths as views into the listing. */
export class FoundPaths {
  count = 0;
  /**
   * The tables, BLOCK paths a block: grown a block at a time and never copied (doubling one table
   * copied it each time, into fresh memory: a page fault per 4 KiB, ~10 us each on a VM).
   */
  readonly intBlocks: Int32Array[] = [];
  readonly numBlocks: Float64Array[] = [];
  /** Image paths: views into the chunk each came in; the root's is its own `/`. */
  readonly paths: Buffer[] = [];
  /** The listing, as the chunks the paths came in. */
  readonly chunks: Buffer[] = [];

  /** Bytes of the root's host path before each image path (`/srv/img` of `/srv/img/etc`; none for `/`). */
  readonly prefix: number;
  private readonly rootHost: Buffer;

  /** `realRoot`: the image directory find was given (resolved). */
  constructor(readonly realRoot: string) {
    this.prefix = realRoot === '/' ? 0 : Buffer.byteLength(realRoot);
    this.rootHost = Buffer.from(realRoot);
  }

  /** Makes room for one more path (at index `count`). */
  grow(): void {
    if (this.count >> BLOCK_BITS < this.intBlocks.length) return;
    this.intBlocks.push(new Int32Array(BLOCK * INT_FIELDS));
    this.numBlocks.push(new Float64Array(BLOCK * NUM_FIELDS));
  }

  record(i: number): FoundRecord {
    const block = i >> BLOCK_BITS;
    const slot = i & (BLOCK - 1);
    return new FoundRecord(
      this.paths[i] as Buffer,
      this,
      this.intBlocks[block] as Int32Array,
      slot * INT_FIELDS,
      this.numBlocks[block] as Float64Array,
      slot * NUM_FIELDS,
    );
  }

  /**
   * The host path of a path of this listing (that very Buffer): find printed the root's host path right
   * before it (%p), so it is a view of both; the root's is its own.
   */
  hostPath(path: Buffer): Buffer {
    if (path.length === 1) return this.rootHost;
    return Buffer.from(path.buffer, path.byteOffset - this.prefix, path.length + this.prefix);
  }

  /** The indexes of the paths in byte order of the paths: the order of a walk. */
  sortedOrder(): number[] {
    const paths = this.paths;
    const order = Array.from({ length: this.count }, (_, i) => i);
    return order.sort((a, b) => Buffer.compare(paths[a] as Buffer, paths[b] as Buffer));
  }
}

/**
 * One path of the listing, made when handed out (a consumer that keeps what it needs lets it go). The
 * numbers find prints as text that few consumers need (device and inode numbers) stay in the listing,
 * by offset, until asked for: most paths never are.
 */
class FoundRecord implements WalkRecord {
  constructor(
    readonly path: Buffer,
    private readonly found: FoundPaths,
    /** Its block of each table, and where its fields start there. */
    private readonly ints: Int32Array,
    private readonly intAt: number,
    private readonly nums: Float64Array,
    private readonly numAt: number,
  ) {}
  private int(field: number): number {
    return this.ints[this.intAt + field] as number;
  }
  private num(field: number): number {
    return this.nums[this.numAt + field] as number;
  }
  get mode(): number {
    return this.int(MODE);
  }
  get uid(): number {
    return this.int(UID) >>> 0;
  }
  get gid(): number {
    return this.int(GID) >>> 0;
  }
  get nlink(): number {
    return this.int(NLINK) >>> 0;
  }
  get size(): number {
    // A small integer as one (a Smi), not as a double: entries keep it, and a double field would give
    // every entry a number object of its own.
    const size = this.num(SIZE);
    return size < 2 ** 31 ? size | 0 : size;
  }
  get mtimeSec(): number {
    return this.num(MTIME_SEC);
  }
  get mtimeNsec(): number {
    return this.int(MTIME_NSEC);
  }
  get ctimeSec(): number {
    return this.num(CTIME_SEC);
  }
  get ctimeNsec(): number {
    return this.int(CTIME_NSEC);
  }
  get mtimeNs(): bigint {
    return BigInt(this.mtimeSec) * NS + BigInt(this.mtimeNsec);
  }
  private get chunk(): Buffer {
    return this.found.chunks[this.int(CHUNK)] as Buffer;
  }
  get link(): Buffer | undefined {
    if ((this.mode & 0o170000) !== 0o120000) return undefined;
    // The target follows the path and its NUL, up to the next NUL.
    const pathEnd = this.path.byteOffset - this.chunk.byteOffset + this.path.length;
    return this.chunk.subarray(pathEnd + 1, this.int(LINK_END));
  }
  get inoLow32(): number {
    // A commit compares it for every path: read without a BigInt while the number is exact as a double.
    const ino = this.decimal(this.int(INO_AT), this.int(DEV_AT));
    return typeof ino === 'number' ? ino % 2 ** 32 : Number(BigInt(ino) & 0xffffffffn);
  }
  private text(from: number, to: number): string {
    return this.chunk.toString('latin1', from, to);
  }
  dev(): bigint {
    return BigInt(this.text(this.int(DEV_AT) + 1, this.int(DEV_END)));
  }
  ino(): bigint {
    return BigInt(this.text(this.int(INO_AT), this.int(DEV_AT)));
  }
  inodeKey(): InodeKey {
    const devAt = this.int(DEV_AT);
    return inodeKey(this.decimal(devAt + 1, this.int(DEV_END)), this.decimal(this.int(INO_AT), devAt));
  }
  /** The listing's digits from..to as a number while exact (15 digits at most), else as text. */
  private decimal(from: number, to: number): number | string {
    if (to - from > 15) return this.text(from, to);
    const chunk = this.chunk;
    let v = 0;
    for (let i = from; i < to; i++) v = v * 10 + ((chunk[i] as number) - 0x30);
    return v;
  }
  rdev(): bigint {
    // find does not print it: a device (rare) is asked directly.
    try {
      return lstatSync(this.found.hostPath(this.path), { bigint: true }).rdev;
    } catch (err) {
      throw sourceError(err, this.path, 'read metadata');
    }
  }
}

/** A listing find printed in a form this parser does not know: the walk thread does it instead. */
class UnexpectedListing extends Error {}

/**
 * Parses the complete records of `out` from `from` into `found` (see the module comment; `found.prefix`
 * bytes of the root are cut from each path); returns where the first incomplete record starts, out.length
 * when none is. A record is complete once its two NULs, after the path and after the link, have come.
 */
function parseFindRecords(out: Buffer, from: number, found: FoundPaths): number {
  const prefix = found.prefix;
  const chunkIndex = found.chunks.length;
  let at = from;
  /** Where the current record's fields end (its path's NUL): nothing is read past it. */
  let limit = 0;
  const bad = (): never => {
    throw new UnexpectedListing(`unexpected find output at byte ${at}`);
  };
  /** A number in `radix` (8 or 10) and the space after it. */
  const number = (radix: number): number => {
    let v = 0;
    const start = at;
    for (let c = out[at] as number; c >= 0x30 && c < 0x30 + radix; c = out[++at] as number) {
      v = v * radix + (c - 0x30);
    }
    if (at === start || at >= limit || out[at] !== 0x20) bad();
    at++;
    return v;
  };
  // `[-]SEC.NNNNNNNNN0 `: tv_sec and tv_nsec as printed, into these two.
  let sec = 0;
  let nsec = 0;
  const time = (): void => {
    const negative = out[at] === 0x2d;
    if (negative) at++;
    sec = 0;
    const start = at;
    for (let c = out[at] as number; c >= 0x30 && c <= 0x39; c = out[++at] as number)
      sec = sec * 10 + (c - 0x30);
    if (at === start || out[at] !== 0x2e || at + 10 >= limit) bad();
    at++;
    nsec = 0;
    for (let k = 0; k < 9; k++) {
      const c = out[at + k] as number;
      if (c < 0x30 || c > 0x39) bad();
      nsec = nsec * 10 + (c - 0x30);
    }
    at += 9;
    while (out[at] !== 0x20) if (++at >= limit) bad();
    at++;
    if (negative) sec = -sec;
  };
  /** Digits up to a space (the inode and device numbers, read later), and the space. */
  const skipWord = () => {
    const start = at;
    while (out[at] !== 0x20) if (++at >= limit) bad();
    if (at === start) bad();
    at++;
  };
  const n = out.length;
  let parsed = 0;
  while (at < n) {
    const pathEnd = out.indexOf(0, at);
    const linkEnd = pathEnd < 0 ? -1 : out.indexOf(0, pathEnd + 1);
    if (linkEnd < 0) break;
    limit = pathEnd;
    const type = TYPE_BY_BYTE[out[at] as number] ?? 0;
    if (out[at + 1] !== 0x20) bad();
    at += 2;
    found.grow();
    const ints = found.intBlocks[found.count >> BLOCK_BITS] as Int32Array;
    const nums = found.numBlocks[found.count >> BLOCK_BITS] as Float64Array;
    const i = (found.count & (BLOCK - 1)) * INT_FIELDS;
    const d = (found.count & (BLOCK - 1)) * NUM_FIELDS;
    ints[i + MODE] = type | number(8);
    ints[i + UID] = number(10);
    ints[i + GID] = number(10);
    ints[i + NLINK] = number(10);
    nums[d + SIZE] = number(10);
    time();
    nums[d + MTIME_SEC] = sec;
    ints[i + MTIME_NSEC] = nsec;
    time();
    nums[d + CTIME_SEC] = sec;
    ints[i + CTIME_NSEC] = nsec;
    ints[i + CHUNK] = chunkIndex;
    ints[i + INO_AT] = at;
    skipWord();
    ints[i + DEV_AT] = at - 1;
    skipWord();
    ints[i + DEV_END] = at - 1;
    ints[i + LINK_END] = linkEnd;
    // The root itself is printed as the root's path: it is `/` in the image.
    found.paths.push(pathEnd - at <= prefix ? Buffer.from('/') : out.subarray(at + prefix, pathEnd));
    found.count++;
    parsed++;
    at = linkEnd + 1;
  }
  if (parsed > 0) found.chunks.push(out);
  return at;
}

/** Parses find's output as it comes, chunk by chunk: a record may be cut anywhere between two. */
export class ListingParser {
  /** The start of a record whose end has not come yet. */
  private rest: Buffer | undefined;

  constructor(private readonly found: FoundPaths) {}

  /** Every record has come whole (none is cut at the end of the output so far). */
  get complete(): boolean {
    return this.rest === undefined;
  }

  /** Parses `chunk`'s records; throws UnexpectedListing for output this parser does not know. */
  push(chunk: Buffer): void {
    let from = 0;
    const rest = this.rest;
    if (rest) {
      // The record cut by the chunk's start is joined alone: the two NULs that end it (after the path,
      // after the link) are in `rest` and in the chunk's first bytes. Joining the whole chunk copied the
      // listing once more, into fresh memory: a page fault per 4 KiB.
      const first = chunk.indexOf(0);
      const end = rest.includes(0) || first < 0 ? first : chunk.indexOf(0, first + 1);
      if (end < 0) {
        this.rest = Buffer.concat([rest, chunk]); // a record longer than a chunk (a very long path)
        return;
      }
      const record = Buffer.concat([rest, chunk.subarray(0, end + 1)]);
      if (parseFindRecords(record, 0, this.found) !== record.length) {
        throw new UnexpectedListing('a record cut between two reads did not parse whole');
      }
      this.rest = undefined;
      from = end + 1;
    }
    const end = parseFindRecords(chunk, from, this.found);
    this.rest = end < chunk.length ? chunk.subarray(end) : undefined;
  }
}

/**
 * Parses a whole listing of `realRoot`, in its order; one that ends inside a record is not one find
 * printed.
 */
export function parseFindListing(out: Buffer, realRoot: string): WalkRecord[] {
  const found = new FoundPaths(realRoot);
  if (parseFindRecords(out, 0, found) !== out.length) {
    throw new UnexpectedListing('find output ends inside a record');
  }
  return Array.from({ length: found.count }, (_, i) => found.record(i));
}

/** A glob pattern matching `text` exactly (find's -path takes fnmatch patterns). */
const literalPattern = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&');

/**
 * Walks `realRoot` with find, leaving out the root's children named in `pruned` (latin1 text) and what is
 * below them; falls back to the walk thread (startWalk, with `opts`) as the module comment says.
 */
export function startFindWalk(realRoot: string, pruned: string[], opts: WalkOptions = {}): Walk {
  const rootText = realRoot === '/' ? '' : realRoot;
  const prune = pruned.flatMap((name, i) => [
    ...(i > 0 ? ['-o'] : []),
    '-path',
    literalPattern(`${rootText}/${Buffer.from(name, 'latin1').toString()}`),
  ]);
  // Names that are not UTF-8 cannot be passed through an argument string exactly: the thread prunes them.
  const exact = pruned.every((name) =>
    Buffer.from(Buffer.from(name, 'latin1').toString(), 'utf8').equals(Buffer.from(name, 'latin1')),
  );
  let child: ChildProcess | undefined;
  // The listing is parsed one chunk per turn of the event loop, so that the pipe is read between
  // chunks. Parsed as each chunk came, in code not yet optimized on a main thread busy starting the
  // export, it was read slower than find printed it: find waited on a full pipe (86 ms for a
  // 10,000-path tree against 45-60 ms when the pipe is drained first). Parsed only once find is done,
  // the parse (~25 ms) waited for find and the main thread sat idle meanwhile.
  const pending: Buffer[] = [];
  let parsing = false;
  let found = new FoundPaths(realRoot);
  const parser = new ListingParser(found);
  let bytes = 0;
  let trouble = !exact;
  /** Parses the pending chunks, one or all; a listing it cannot read is left to the thread. */
  const parsePending = (all: boolean) => {
    while (pending.length > 0 && !trouble) {
      const chunk = pending.shift() as Buffer;
      try {
        parser.push(chunk);
      } catch (err) {
        if (!(err instanceof UnexpectedListing)) throw err;
        trouble = true;
        child?.kill('SIGKILL');
      }
      if (!all) break;
    }
  };
  const parseLater = () => {
    parsing = false;
    parsePending(false);
    if (pending.length > 0 && !trouble) {
      parsing = true;
      setImmediate(parseLater);
    }
  };
  const listed = new Promise<boolean>((resolve) => {
    if (trouble) return resolve(false);
    child = spawn(
      'find',
      [realRoot, ...(prune.length > 0 ? ['(', ...prune, ')', '-prune', '-o'] : []), '-printf', FORMAT],
      { stdio: ['ignore', 'pipe', 'pipe'], env: plainToolEnv() },
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (trouble) return;
      if (bytes > MAX_LISTING_BYTES) {
        trouble = true;
        pending.length = 0;
        child!.kill('SIGKILL');
        return;
      }
      pending.push(chunk);
      if (!parsing) {
        parsing = true;
        setImmediate(parseLater);
      }
    });
    child.stderr!.on('data', () => {
      trouble = true;
    });
    child.on('error', () => {
      trouble = true;
    });
    child.on('close', (code) => {
      if (code === 0 && !trouble) parsePending(true);
      resolve(code === 0 && !trouble && parser.complete);
    });
  });

  /** The paths' indexes in walk order, once the listing is complete; how many were handed out. */
  let order: number[] | undefined;
  let handed = 0;
  let thread: Walk | undefined;
  let stopped = false;
  return {
    async next() {
      if (thread) return thread.next();
      if (!order) {
        const complete = await listed;
        if (stopped) return undefined;
        if (!complete) {
          found = new FoundPaths(realRoot); // the records the thread gives replace these
          thread = startWalk(realRoot, pruned, opts);
          return thread.next();
        }
        order = found.sortedOrder();
      }
      if (handed === order.length) return undefined;
      const end = Math.min(handed + BATCH, order.length);
      const batch: WalkRecord[] = [];
      for (; handed < end; handed++) batch.push(found.record(order[handed] as number));
      return batch;
    },
    hostPath(path) {
      return thread ? thread.hostPath(path) : found.hostPath(path);
    },
    stop() {
      stopped = true;
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      thread?.stop();
    },
  };
}
