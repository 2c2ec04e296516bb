/**
 * An image that is a directory on the host.
 *
 * The walk is synchronous (`lstatSync`, `readdirSync`): in Node a synchronous lstat walk is several
 * times faster than awaiting async calls one by one, and the entries go out in batches between which
 * the consumer runs. Paths are Buffers throughout, so names with newlines or non-UTF-8 bytes come out
 * exactly. Entries come in byte order of their full paths (`/a`, `/a-b`, `/a/x`): each directory's
 * listing is sorted with the contents of a subdirectory `d` keyed as `d/`, which places them exactly
 * where byte order of the full paths puts them. Memory holds the listings of the directories on the
 * current path, never file content.
 */
import {
  type BigIntStats,
  closeSync,
  constants,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
  statSync,
} from 'node:fs';
import { CloudletsError } from '../../errors.js';
import type { Entry, EntryType, ImageSource, SyncContentReader } from '../entry.js';
import { type ResolveFs, resolveImagePath } from './resolve.js';
import { readTreeXattrs, type TreeXattrs } from './xattrs.js';

export interface DirectorySourceOptions {
  /**
   * Skips an entry and, for a directory, everything below it, without walking it. Called with the
   * image path (`/.git`). Default: nothing skipped.
   */
  prune?: (path: Buffer) => boolean;
  /** Read extended attributes with getfattr; default true. */
  xattrs?: boolean;
  /** Bounds on the getfattr run. */
  xattrTimeoutMs?: number;
  xattrMaxBytes?: number;
  /** Cancels the xattr read. */
  signal?: AbortSignal;
}

const CHUNK = 1024 * 1024;
/** Entries walked between two hand-overs to the consumer. */
const BATCH = 512;
/** Entries walked while getfattr runs, before waiting for it (their metadata is small; no content). */
const AHEAD = 8192;
const ROOT = Buffer.from('/');
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
/** One byte read past the expected end, to notice a file that grew; never handed out. */
const PROBE = Buffer.alloc(1);

export function typeOfMode(mode: number): EntryType | undefined {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o020000:
      return 'char';
    case 0o060000:
      return 'block';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    default:
      return undefined;
  }
}

/** Linux's encoding of a device number (glibc `gnu_dev_major`/`gnu_dev_minor`). */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return { major: Number(major), minor: Number(minor) };
}

function childPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length === 1 ? Buffer.concat([ROOT, name]) : Buffer.concat([dir, ROOT, name]);
}

function sourceError(err: unknown, path: Buffer, doing: string): CloudletsError {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  return new CloudletsError('ESOURCE', `cannot ${doing}: ${code}`, {
    where: path.toString('utf8'),
    cause: err,
  });
}

/** Opens a regular file for positional reads; closing checks it did not change size while read. */
function openContent(host: Buffer, path: Buffer, size: number): SyncContentReader {
  let fd: number;
  try {
    // O_NONBLOCK: a file swapped for a FIFO since the walk must not block the open forever.
    fd = openSync(host, constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw sourceError(err, path, 'open');
  }
  let open = true;
  return {
    read(buf, offset, length, position) {
      try {
        return readSync(fd, buf, offset, length, position);
      } catch (err) {
        throw sourceError(err, path, 'read');
      }
    },
    close(bytesRead) {
      if (!open) return;
      open = false;
      try {
        // A negative count: the reader gave up early (an error, or the consumer stopped); just close.
        if (bytesRead >= 0 && (bytesRead !== size || readSync(fd, PROBE, 0, 1, bytesRead) !== 0)) {
          throw new CloudletsError('ESOURCE', `changed size while being read (expected ${size} bytes)`, {
            where: path.toString('utf8'),
            hint: 'stop whatever is writing to the image and try again',
          });
        }
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** Streams a regular file in large reads; a file whose size changed while read is an error. */
async function* readContent(host: Buffer, path: Buffer, size: number): AsyncIterable<Buffer> {
  const reader = openContent(host, path, size);
  let done = 0;
  let complete = false;
  try {
    while (done < size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - done));
      const n = reader.read(buf, 0, buf.length, done);
      if (n === 0) break;
      done += n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
    complete = true;
  } finally {
    reader.close(complete ? done : -1);
  }
}

interface Item {
  /** The sort key within the directory: the name, or `name/` for a directory's contents. */
  key: Buffer;
  path: Buffer;
  st: BigIntStats;
  contents: boolean;
}

interface Frame {
  items: Item[];
  next: number;
}

/** Opens a directory as an image source. The root may be a symlink to a directory; nothing else is followed. */
export function openDirectorySource(root: string, opts: DirectorySourceOptions = {}): ImageSource {
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    if (!statSync(realRoot).isDirectory())
      throw new CloudletsError('ESOURCE', 'is not a directory', { where: root });
  } catch (err) {
    if (err instanceof CloudletsError) throw err;
    throw sourceError(err, Buffer.from(root), 'open the image directory');
  }
  const hostRoot = Buffer.from(realRoot === '/' ? '' : realRoot);
  const host = (path: Buffer) =>
    path.length === 1 ? Buffer.from(realRoot) : Buffer.concat([hostRoot, path]);
  const prune = opts.prune ?? (() => false);

  const lstat = (path: Buffer): BigIntStats => {
    try {
      return lstatSync(host(path), { bigint: true });
    } catch (err) {
      throw sourceError(err, path, 'read metadata');
    }
  };

  const list = (dir: Buffer): Item[] => {
    let names: Buffer[];
    try {
      names = readdirSync(host(dir), { encoding: 'buffer' });
    } catch (err) {
      throw sourceError(err, dir, 'list directory');
    }
    const items: Item[] = [];
    for (const name of names) {
      const path = childPath(dir, name);
      if (prune(path)) continue;
      const st = lstat(path);
      items.push({ key: name, path, st, contents: false });
      if (st.isDirectory()) items.push({ key: Buffer.concat([name, ROOT]), path, st, contents: true });
    }
    return items.sort((a, b) => Buffer.compare(a.key, b.key));
  };

  async function* entries(): AsyncIterable<Entry> {
    // Stops getfattr when the consumer stops early or the caller aborts.
    const stop = new AbortController();
    const onAbort = () => stop.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const xattrsPromise: Promise<TreeXattrs> =
      opts.xattrs === false
        ? Promise.resolve(new Map())
        : readTreeXattrs(realRoot, {
            ...(opts.xattrTimeoutMs ? { timeoutMs: opts.xattrTimeoutMs } : {}),
            ...(opts.xattrMaxBytes ? { maxOutputBytes: opts.xattrMaxBytes } : {}),
            // What the walk skips, getfattr skips too (a repository's .git is never read).
            ...(opts.prune ? { prune: opts.prune } : {}),
            signal: stop.signal,
          });
    // If the walk fails first, the getfattr failure must not surface as an unhandled rejection.
    xattrsPromise.catch(() => {});
    const firstLinks = new Map<string, Buffer>();
    const noXattrs: ReadonlyMap<string, Buffer> = new Map();
    let xattrs: TreeXattrs | undefined;

    const toEntry = (path: Buffer, st: BigIntStats): Entry => {
      const mode = Number(st.mode);
      let type = typeOfMode(mode);
      if (!type)
        throw new CloudletsError('ESOURCE', `unknown file type ${mode.toString(8)}`, {
          where: path.toString('utf8'),
        });
      const entry: Entry = {
        path,
        type,
        mode: mode & 0o7777,
        uid: Number(st.uid),
        gid: Number(st.gid),
        mtimeNs: st.mtimeNs,
        size: 0,
        xattrs: xattrs?.get(path.toString('latin1')) ?? noXattrs,
      };
      if (type === 'file') {
        const size = Number(st.size);
        const hostPath = host(path);
        if (st.nlink > 1n) {
          const key = `${st.dev}:${st.ino}`;
          const first = firstLinks.get(key);
          if (first) {
            type = entry.type = 'hardlink';
            entry.linkTarget = first;
            entry.targetSize = size;
          } else {
            firstLinks.set(key, path);
          }
        }
        if (type === 'file') entry.size = size;
        entry.content = () => readContent(hostPath, path, size);
        entry.openContentSync = () => openContent(hostPath, path, size);
      } else if (type === 'symlink') {
        try {
          entry.linkTarget = readlinkSync(host(path), { encoding: 'buffer' });
        } catch (err) {
          throw sourceError(err, path, 'read symlink');
        }
      } else if (type === 'char' || type === 'block') {
        const { major, minor } = splitDev(st.rdev);
        entry.devMajor = major;
        entry.devMinor = minor;
      }
      return entry;
    };

    // Walk a first batch while getfattr runs, then wait for it once.
    const pending: Array<[Buffer, BigIntStats]> = [];
    const stack: Frame[] = [];
    let rootStat: BigIntStats;
    try {
      rootStat = statSync(realRoot, { bigint: true });
    } catch (err) {
      throw sourceError(err, ROOT, 'read metadata');
    }
    pending.push([ROOT, rootStat]);
    stack.push({ items: list(ROOT), next: 0 });

    const step = (): boolean => {
      while (stack.length > 0) {
        const frame = stack[stack.length - 1]!;
        const item = frame.items[frame.next++];
        if (!item) {
          stack.pop();
          continue;
        }
        if (item.contents) {
          stack.push({ items: list(item.path), next: 0 });
          continue;
        }
        pending.push([item.path, item.st]);
        return true;
      }
      return false;
    };

    try {
      let more = true;
      while (more && pending.length < AHEAD) more = step();
      xattrs = await xattrsPromise;
      for (;;) {
        for (const [path, st] of pending) yield toEntry(path, st);
        pending.length = 0;
        if (!more) return;
        while (more && pending.length < BATCH) more = step();
      }
    } finally {
      stop.abort();
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  // Symlinks are resolved by the resolver every source shares, answering its lstat from the host.
  const resolveFs: ResolveFs = {
    lstat(path) {
      let st: BigIntStats;
      try {
        st = lstatSync(host(path), { bigint: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
        throw sourceError(err, path, 'read metadata');
      }
      const type = typeOfMode(Number(st.mode)) ?? 'file';
      if (type !== 'symlink') return { type };
      try {
        return { type, linkTarget: readlinkSync(host(path), { encoding: 'buffer' }) };
      } catch (err) {
        throw sourceError(err, path, 'read symlink');
      }
    },
  };

  const readFile = async (imagePath: string): Promise<Buffer | undefined> => {
    const found = await resolveImagePath(resolveFs, imagePath);
    if (!found) return undefined;
    if (found.stat.type !== 'file') {
      throw new CloudletsError('EPATH', `is not a regular file (${found.stat.type})`, { where: imagePath });
    }
    const size = Number(lstatSync(host(found.path), { bigint: true }).size);
    const chunks: Buffer[] = [];
    for await (const chunk of readContent(host(found.path), found.path, size)) chunks.push(chunk);
    return Buffer.concat(chunks);
  };

  return { description: `directory ${root}`, entries, readFile };
}
