/**
 * The walk of a directory image, on a worker thread: `lstat` and `readdir` of every path, in the order the
 * source yields (byte order of full paths), encoded as binary records into chunks handed to the main thread.
 *
 * Why a thread: the walk is a system call or two per path, and a BigInt stats object per path for the
 * garbage collector. On a second core it overlaps with whatever consumes the entries (tar headers and
 * writes, a filesystem's structures); the main thread only decodes records.
 *
 * Order: each directory's listing is sorted with the contents of a subdirectory `d` keyed as `d/`, which
 * places them exactly where byte order of the full paths puts them (`/a`, `/a-b`, `/a/x`). Memory holds the
 * listings of the directories on the current path, and at most `maxChunks` chunks not yet decoded.
 *
 * The worker runs `walkerThread`, given to the Worker as source text (`eval`), so that the same code runs
 * from dist/ and from the TypeScript sources under vitest. It must be self-contained: it uses nothing from
 * this module's scope, and names its modules through `require`.
 *
 * Record layout (little-endian), one after another in a chunk:
 *   entry: u8 1, u32 path length, path, u32 mode, u32 uid, u32 gid, u32 nlink, f64 size, i64 mtime (ns),
 *          u64 dev, u64 ino, u64 rdev, f64 mtime seconds, u32 mtime nanoseconds, f64 ctime seconds,
 *          u32 ctime nanoseconds, i32 link length (-1: none), link
 *   error: u8 2, u32 path length, path, u32 code length, code, u32 doing length, doing
 */

export const RECORD = { ENTRY: 1, ERROR: 2 } as const;

/** Indices into the control array (Int32Array over shared memory). */
export const WALK_CTRL = {
  /** Chunks posted and not yet decoded: the worker waits at a limit. */
  OUTSTANDING: 0,
  /** Bumped by the main thread when it has decoded a chunk or wants the walk to stop. */
  MAIN_EVENT: 1,
  STOP: 2,
  LENGTH: 3,
} as const;

export interface WalkerData {
  /** The real path of the root directory. */
  root: string;
  /** Names at the root left out with their subtrees (the image's repository, `.git`), as latin1 text. */
  pruned: string[];
  ctrl: SharedArrayBuffer;
  chunkBytes: number;
  maxChunks: number;
}

/** Worker → main: a chunk of records, or the end of the walk (`done`), or a crash (`fatal`). */
export interface WalkChunk {
  buffer: ArrayBuffer;
  used: number;
  done?: boolean;
  fatal?: string;
}

/** The worker's whole program. Self-contained: see the module comment. */
export function walkerThread(req: NodeJS.Require): void {
  const { workerData, parentPort } = req('node:worker_threads') as typeof import('node:worker_threads');
  const fs = req('node:fs') as typeof import('node:fs');
  const data = workerData as WalkerData;
  const ENTRY = 1;
  const ERROR = 2;
  const OUTSTANDING = 0;
  const MAIN_EVENT = 1;
  const STOP = 2;
  const SLASH = Buffer.from('/');
  const NS = 1_000_000_000n;

  const ctrl = new Int32Array(data.ctrl);
  const hostRoot = Buffer.from(data.root === '/' ? '' : data.root);
  const pruned = new Set(data.pruned);
  const host = (path: Buffer) =>
    path.length === 1 ? Buffer.from(data.root) : Buffer.concat([hostRoot, path]);
  const childPath = (dir: Buffer, name: Buffer) =>
    dir.length === 1 ? Buffer.concat([SLASH, name]) : Buffer.concat([dir, SLASH, name]);

  let buffer = new ArrayBuffer(data.chunkBytes);
  let bytes = Buffer.from(buffer);
  let view = new DataView(buffer);
  let used = 0;

  const stopped = () => Atomics.load(ctrl, STOP) !== 0;
  /** Sends the chunk; unless `done`, starts the next one with room for `need` bytes. False once asked to stop. */
  const post = (done: boolean, need = 0): boolean => {
    if (used > 0 || done) {
      parentPort!.postMessage({ buffer, used, ...(done ? { done } : {}) } satisfies WalkChunk, [buffer]);
      Atomics.add(ctrl, OUTSTANDING, 1);
    }
    if (done) return false;
    for (;;) {
      const seen = Atomics.load(ctrl, MAIN_EVENT);
      if (stopped()) return false;
      if (Atomics.load(ctrl, OUTSTANDING) < data.maxChunks) break;
      Atomics.wait(ctrl, MAIN_EVENT, seen);
    }
    // A record larger than a chunk (long path and link target, small test chunks) gets a chunk of its own.
    buffer = new ArrayBuffer(Math.max(data.chunkBytes, need));
    bytes = Buffer.from(buffer);
    view = new DataView(buffer);
    used = 0;
    return true;
  };
  /** Room for `n` more bytes in the chunk; false once asked to stop. */
  const room = (n: number): boolean => used + n <= bytes.length || post(false, n);

  const putBytes = (b: Buffer) => {
    view.setUint32(used, b.length, true);
    used += 4;
    used += b.copy(bytes, used);
  };

  class Failed extends Error {}
  const fail = (err: unknown, path: Buffer, doing: string): never => {
    const code = Buffer.from(String((err as NodeJS.ErrnoException).code ?? (err as Error).message));
    const what = Buffer.from(doing);
    if (room(1 + 12 + path.length + code.length + what.length)) {
      bytes[used++] = ERROR;
      putBytes(path);
      putBytes(code);
      putBytes(what);
    }
    throw new Failed();
  };

  const lstat = (path: Buffer): import('node:fs').BigIntStats => {
    try {
      return fs.lstatSync(host(path), { bigint: true });
    } catch (err) {
      return fail(err, path, 'read metadata');
    }
  };

  /** A time as tv_sec and tv_nsec, which is never negative: 1.5 s before 1970 is -2 s + 0.5 s. */
  const putTime = (ns: bigint, at: number) => {
    let sec = ns / NS;
    let nsec = ns % NS;
    if (nsec < 0n) {
      nsec += NS;
      sec -= 1n;
    }
    view.setFloat64(at, Number(sec), true);
    view.setUint32(at + 8, Number(nsec), true);
  };

  /** Encodes one entry; false once asked to stop. */
  const emit = (path: Buffer, st: import('node:fs').BigIntStats): boolean => {
    let link: Buffer | undefined;
    if ((Number(st.mode) & 0o170000) === 0o120000) {
      try {
        link = fs.readlinkSync(host(path), { encoding: 'buffer' });
      } catch (err) {
        return fail(err, path, 'read symlink');
      }
    }
    if (!room(1 + 4 + path.length + 16 + 8 + 8 + 24 + 24 + 4 + (link?.length ?? 0))) return false;
    bytes[used++] = ENTRY;
    putBytes(path);
    view.setUint32(used, Number(st.mode), true);
    view.setUint32(used + 4, Number(st.uid), true);
    view.setUint32(used + 8, Number(st.gid), true);
    view.setUint32(used + 12, Number(st.nlink), true);
    view.setFloat64(used + 16, Number(st.size), true);
    view.setBigInt64(used + 24, st.mtimeNs, true);
    view.setBigUint64(used + 32, st.dev, true);
    view.setBigUint64(used + 40, st.ino, true);
    view.setBigUint64(used + 48, st.rdev, true);
    // Times again as seconds and nanoseconds: what git's index keeps, compared without a BigInt.
    putTime(st.mtimeNs, used + 56);
    putTime(st.ctimeNs, used + 68);
    used += 80;
    if (link) putBytes(link);
    else {
      view.setInt32(used, -1, true);
      used += 4;
    }
    return true;
  };

  interface Item {
    key: Buffer;
    path: Buffer;
    st: import('node:fs').BigIntStats;
    contents: boolean;
  }
  const list = (dir: Buffer): Item[] => {
    let names: Buffer[];
    try {
      names = fs.readdirSync(host(dir), { encoding: 'buffer' });
    } catch (err) {
      return fail(err, dir, 'list directory');
    }
    const items: Item[] = [];
    for (const name of names) {
      if (dir.length === 1 && pruned.has(name.toString('latin1'))) continue;
      const path = childPath(dir, name);
      const st = lstat(path);
      items.push({ key: name, path, st, contents: false });
      if (st.isDirectory()) items.push({ key: Buffer.concat([name, SLASH]), path, st, contents: true });
    }
    return items.sort((a, b) => Buffer.compare(a.key, b.key));
  };

  try {
    let rootStat: import('node:fs').BigIntStats;
    try {
      rootStat = fs.statSync(data.root, { bigint: true });
    } catch (err) {
      fail(err, SLASH, 'read metadata');
      return;
    }
    if (!emit(SLASH, rootStat)) return;
    const stack: { items: Item[]; next: number }[] = [{ items: list(SLASH), next: 0 }];
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const item = frame.items[frame.next++];
      if (!item) {
        stack.pop();
        continue;
      }
      if (item.contents) stack.push({ items: list(item.path), next: 0 });
      else if (!emit(item.path, item.st)) return;
    }
    post(true);
  } catch (err) {
    if (err instanceof Failed) {
      post(true);
      return;
    }
    parentPort!.postMessage({
      buffer: new ArrayBuffer(0),
      used: 0,
      fatal: String((err as Error)?.stack ?? err),
    });
  }
}
