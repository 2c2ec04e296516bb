/**
 * An image that is a directory on the host.
 *
 * The walk (every path's `lstat`, sorted) runs on a worker thread (walk-worker.ts) while the consumer works
 * on what it has already sent, or is GNU find's listing of the whole tree (find-walk.ts) for a consumer
 * that reads it all first; extended attributes come from `getfattr` runs (xattrs.ts) alongside, and each
 * path waits only for the run that covers it. Paths are Buffers throughout, so names with newlines or
 * non-UTF-8 bytes come out exactly. Entries come in byte order of their full paths (`/a`, `/a-b`,
 * `/a/x`). Memory holds the listings of the directories on the current path and a bounded number of
 * walked entries, or find's listing (up to 64 MiB, beyond which the thread walks); never file content.
 */
import { type BigIntStats, lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { CloudletsError } from '../../errors.js';
import { type Entry, type EntryType, eachEntry, type ImageSource } from '../entry.js';
import { startFindWalk } from './find-walk.js';
import { hostPaths, openHostFile, sourceError } from './host-file.js';
import { type ResolveFs, resolveImagePath } from './resolve.js';
import { type InodeKey, prunedRootNames, startWalk, type Walk, type WalkRecord } from './walk.js';
import { startTreeXattrs, type TreeXattrRuns } from './xattrs.js';

export interface DirectorySourceOptions {
  /**
   * Skips a top-level entry (called with its image path, `/.git`) and, for a directory, everything below
   * it, without walking it. Only the root's own children are asked (the walk runs on another thread, the
   * predicate stays here), as for getfattr. Default: nothing skipped.
   */
  prune?: (path: Buffer) => boolean;
  /**
   * How the tree is walked. 'thread' (default): on a worker thread, the entries of the first directories
   * coming while the rest is walked. 'find': listed whole by GNU find, then sorted (find-walk.ts): less
   * CPU, but no entry before the whole listing is in; for a consumer that reads every entry before it
   * writes anything (a disk build's scan). Without a usable find, the thread walks.
   */
  walk?: 'thread' | 'find';
  /** Read extended attributes with getfattr; default true. */
  xattrs?: boolean;
  /** Bounds on each getfattr run. */
  xattrTimeoutMs?: number;
  xattrMaxBytes?: number;
  /** Cancels the xattr read. */
  signal?: AbortSignal;
  /**
   * Gives each entry the walk's stat data (Entry.hostStat), for a commit's stat cache. Off by default:
   * it keeps a record per entry alive for as long as the entry, which a build holds for its whole tree.
   */
  hostStat?: boolean;
}

const CHUNK = 1024 * 1024;

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

/** Streams a regular file in large reads; a file whose size changed while read is an error. */
async function* readContent(host: Buffer, path: Buffer, size: number): AsyncIterable<Buffer> {
  const reader = openHostFile(host, path, size);
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
  const host = hostPaths(realRoot);

  /** The walk and the getfattr runs of one iteration, started as soon as asked for. */
  interface Reading {
    walk: Walk;
    xattrs: TreeXattrRuns | undefined;
    stop: () => void;
  }
  const startReading = (): Reading => {
    // Stops getfattr when the consumer stops early or the caller aborts.
    const stop = new AbortController();
    const onAbort = () => stop.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // The walk first: what comes after waits for it more than for getfattr.
    const pruned = prunedRootNames(realRoot, opts.prune);
    const walk = opts.walk === 'find' ? startFindWalk(realRoot, pruned) : startWalk(realRoot, pruned);
    const xattrs =
      opts.xattrs === false
        ? undefined
        : startTreeXattrs(realRoot, {
            ...(opts.xattrTimeoutMs ? { timeoutMs: opts.xattrTimeoutMs } : {}),
            ...(opts.xattrMaxBytes ? { maxOutputBytes: opts.xattrMaxBytes } : {}),
            // What the walk skips, getfattr skips too (a repository's .git is never read).
            ...(opts.prune ? { prune: opts.prune } : {}),
            // find's records come only once it has listed the whole tree: runs by group of top-level
            // directories would let none of them start sooner, and each run is one more process start
            // (3-5 ms of the main thread each, measured: libuv waits for the child's exec).
            ...(opts.walk === 'find' ? { deepRuns: 1 } : {}),
            signal: stop.signal,
          });
    return {
      walk,
      xattrs,
      stop: () => {
        walk.stop();
        stop.abort();
        opts.signal?.removeEventListener('abort', onAbort);
      },
    };
  };
  /** Started by readAhead() for the next iteration. */
  let ahead: Reading | undefined;

  const entries = (): AsyncIterable<Entry> => eachEntry(entryBatches());

  async function* entryBatches(): AsyncIterable<readonly Entry[]> {
    // The walk and the getfattr runs go on meanwhile (each path waits for its own run).
    const reading = ahead ?? startReading();
    ahead = undefined;
    const firstLinks = new Map<InodeKey, Buffer>();
    const noXattrs: ReadonlyMap<string, Buffer> = new Map();
    const xattrs = reading.xattrs?.map ?? new Map<string, Map<string, Buffer>>();

    /**
     * Gives a file entry its readers. Two functions a file, the fewest the entry's interface allows,
     * holding only the path and the size: not the walk's record, which the entry would otherwise keep
     * alive for as long as a build keeps its entries (the whole tree). The host path is made when the
     * content is read (a commit's walk never reads it; a build reads each file once).
     */
    const giveReaders = (entry: Entry, path: Buffer, size: number): void => {
      entry.content = () => readContent(reading.walk.hostPath(path), path, size);
      entry.openContentSync = () => openHostFile(reading.walk.hostPath(path), path, size);
    };

    const toEntry = (r: WalkRecord): Entry => {
      const { path, mode } = r;
      let type = typeOfMode(mode);
      if (!type)
        throw new CloudletsError('ESOURCE', `unknown file type ${mode.toString(8)}`, {
          where: path.toString('utf8'),
        });
      // The fields most entries get are all given here, so that files, directories and symlinks share one
      // shape (one map for the filters and sinks to meet, and no property array added to each file).
      const entry: Entry = {
        path,
        type,
        mode: mode & 0o7777,
        uid: r.uid,
        gid: r.gid,
        mtimeNs: r.mtimeNs,
        size: 0,
        xattrs: xattrs.size === 0 ? noXattrs : (xattrs.get(path.toString('latin1')) ?? noXattrs),
        linkTarget: undefined,
        content: undefined,
        openContentSync: undefined,
      };
      if (opts.hostStat) entry.hostStat = r;
      if (type === 'file') {
        const size = r.size;
        if (r.nlink > 1) {
          const key = r.inodeKey();
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
        giveReaders(entry, path, size);
      } else if (type === 'symlink') {
        entry.linkTarget = r.link;
      } else if (type === 'char' || type === 'block') {
        const { major, minor } = splitDev(r.rdev());
        entry.devMajor = major;
        entry.devMinor = minor;
      }
      return entry;
    };

    try {
      for (;;) {
        const records = await reading.walk.next();
        if (records === undefined) return;
        // Each path goes on once the getfattr run covering it has finished: what is ready goes first.
        let from = 0;
        for (let i = 0; reading.xattrs && i < records.length; i++) {
          const wait = reading.xattrs.ready(records[i]!.path);
          if (!wait) continue;
          if (i > from) yield records.slice(from, i).map(toEntry);
          from = i;
          await wait;
        }
        yield (from === 0 ? records : records.slice(from)).map(toEntry);
      }
    } finally {
      reading.stop();
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

  /** The regular file at `imagePath` (its canonical path and size), or undefined when absent. */
  const findFile = async (imagePath: string): Promise<{ path: Buffer; size: number } | undefined> => {
    const found = await resolveImagePath(resolveFs, imagePath);
    if (!found) return undefined;
    if (found.stat.type !== 'file') {
      throw new CloudletsError('EPATH', `is not a regular file (${found.stat.type})`, { where: imagePath });
    }
    return { path: found.path, size: Number(lstatSync(host(found.path), { bigint: true }).size) };
  };

  const readFile = async (imagePath: string): Promise<Buffer | undefined> => {
    const found = await findFile(imagePath);
    if (!found) return undefined;
    const size = found.size;
    const chunks: Buffer[] = [];
    for await (const chunk of readContent(host(found.path), found.path, size)) chunks.push(chunk);
    return Buffer.concat(chunks);
  };

  return {
    description: `directory ${root}`,
    entries,
    entryBatches,
    readFile,
    fileSize: async (imagePath) => (await findFile(imagePath))?.size,
    readAhead() {
      ahead ??= startReading();
    },
    async close() {
      ahead?.stop();
      ahead = undefined;
    },
  };
}
