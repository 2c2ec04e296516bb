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
 * paths (~120 bytes a path), bounded by that limit.
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
 * One path of the listing. The numbers find prints as text that few consumers need (device and inode
 * numbers, the host path) stay in the listing, by offset, until asked for: most paths never are.
 */
class FoundRecord implements WalkRecord {
  constructor(
    readonly path: Buffer,
    readonly mode: number,
    readonly uid: number,
    readonly gid: number,
    readonly nlink: number,
    readonly size: number,
    readonly mtimeSec: number,
    readonly mtimeNsec: number,
    readonly ctimeSec: number,
    readonly ctimeNsec: number,
    readonly link: Buffer | undefined,
    private readonly listing: Buffer,
    /** Offsets in the listing: the inode number, the space before the device number, the space after. */
    private readonly inoAt: number,
    private readonly devAt: number,
    private readonly devEnd: number,
    /** Where the host path (find's %p) starts; it ends where `path` does. */
    private readonly hostAt: number,
  ) {}
  get mtimeNs(): bigint {
    return BigInt(this.mtimeSec) * NS + BigInt(this.mtimeNsec);
  }
  get inoLow32(): number {
    // A commit compares it for every path: read without a BigInt while the number is exact as a double.
    const ino = this.decimal(this.inoAt, this.devAt);
    return typeof ino === 'number' ? ino % 2 ** 32 : Number(BigInt(ino) & 0xffffffffn);
  }
  private text(from: number, to: number): string {
    return this.listing.toString('latin1', from, to);
  }
  dev(): bigint {
    return BigInt(this.text(this.devAt + 1, this.devEnd));
  }
  ino(): bigint {
    return BigInt(this.text(this.inoAt, this.devAt));
  }
  inodeKey(): InodeKey {
    return inodeKey(this.decimal(this.devAt + 1, this.devEnd), this.decimal(this.inoAt, this.devAt));
  }
  /** The listing's digits from..to as a number while exact (15 digits at most), else as text. */
  private decimal(from: number, to: number): number | string {
    if (to - from > 15) return this.text(from, to);
    let v = 0;
    for (let i = from; i < to; i++) v = v * 10 + ((this.listing[i] as number) - 0x30);
    return v;
  }
  hostPath(): Buffer {
    // Any other path is the host path's tail, in the same listing; the root's (`/`) is made apart.
    const end =
      this.path.length === 1
        ? this.listing.indexOf(0, this.hostAt)
        : this.path.byteOffset - this.listing.byteOffset + this.path.length;
    return this.listing.subarray(this.hostAt, end);
  }
  rdev(): bigint {
    // find does not print it: a device (rare) is asked directly.
    try {
      return lstatSync(this.hostPath(), { bigint: true }).rdev;
    } catch (err) {
      throw sourceError(err, this.path, 'read metadata');
    }
  }
}

/** A listing find printed in a form this parser does not know: the walk thread does it instead. */
class UnexpectedListing extends Error {}

/**
 * Parses the complete records of `out` from `from` into `records` (see the module comment; `prefix` bytes
 * of the root are cut from each path); returns where the first incomplete record starts, out.length when
 * none is. A record is complete once its two NULs, after the path and after the link, have come.
 */
export function parseFindRecords(out: Buffer, from: number, prefix: number, records: WalkRecord[]): number {
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
  while (at < n) {
    const start = at;
    const pathEnd = out.indexOf(0, at);
    const linkEnd = pathEnd < 0 ? -1 : out.indexOf(0, pathEnd + 1);
    if (linkEnd < 0) return start;
    limit = pathEnd;
    const type = TYPE_BY_BYTE[out[at] as number] ?? 0;
    if (out[at + 1] !== 0x20) bad();
    at += 2;
    const perm = number(8);
    const uid = number(10);
    const gid = number(10);
    const nlink = number(10);
    const size = number(10);
    time();
    const mtimeSec = sec;
    const mtimeNsec = nsec;
    time();
    const inoAt = at;
    skipWord();
    const devAt = at - 1;
    skipWord();
    const devEnd = at - 1;
    const hostAt = at;
    // The root itself is printed as the root's path: it is `/` in the image.
    const path = pathEnd - at <= prefix ? Buffer.from('/') : out.subarray(at + prefix, pathEnd);
    const link = type === 0o120000 ? out.subarray(pathEnd + 1, linkEnd) : undefined;
    at = linkEnd + 1;
    records.push(
      new FoundRecord(
        path,
        type | perm,
        uid,
        gid,
        nlink,
        size,
        mtimeSec,
        mtimeNsec,
        sec,
        nsec,
        link,
        out,
        inoAt,
        devAt,
        devEnd,
        hostAt,
      ),
    );
  }
  return at;
}

/** Parses a whole listing; one that ends inside a record is not one find printed. */
export function parseFindListing(out: Buffer, prefix: number): WalkRecord[] {
  const records: WalkRecord[] = [];
  if (parseFindRecords(out, 0, prefix, records) !== out.length) {
    throw new UnexpectedListing('find output ends inside a record');
  }
  return records;
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
  /** The start of a record whose end has not come yet. */
  let rest: Buffer | undefined;
  let parsing = false;
  const records: WalkRecord[] = [];
  const prefix = Buffer.byteLength(rootText);
  let bytes = 0;
  let trouble = !exact;
  /** Parses the pending chunks, one or all; a listing it cannot read is left to the thread. */
  const parsePending = (all: boolean) => {
    while (pending.length > 0 && !trouble) {
      const chunk = pending.shift() as Buffer;
      const out = rest ? Buffer.concat([rest, chunk]) : chunk;
      try {
        const end = parseFindRecords(out, 0, prefix, records);
        rest = end < out.length ? out.subarray(end) : undefined;
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
      resolve(code === 0 && !trouble && rest === undefined);
    });
  });

  let batches: WalkRecord[][] | undefined;
  let thread: Walk | undefined;
  let stopped = false;
  return {
    async next() {
      if (thread) return thread.next();
      if (!batches) {
        const complete = await listed;
        if (stopped) return undefined;
        if (!complete) {
          records.length = 0;
          thread = startWalk(realRoot, pruned, opts);
          return thread.next();
        }
        records.sort((a, b) => Buffer.compare(a.path, b.path));
        batches = [];
        for (let i = records.length; i > 0; i -= BATCH)
          batches.push(records.slice(Math.max(0, i - BATCH), i));
        records.length = 0;
      }
      return batches.pop();
    },
    stop() {
      stopped = true;
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      thread?.stop();
    },
  };
}
