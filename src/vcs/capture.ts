// Reads an image's tree once and splits it into what the VCS stores (file and symlink content) and what
// the metadata file records (everything else, and the metadata of those too).
import type { Entry, HostStat, ImageSource } from '../stream/entry.js';
import { METADATA_PATH, type MetaRecord } from './metadata.js';

export interface CaptureOptions {
  /** True for image paths that are never committed (the manifest's volatile patterns). */
  isVolatile: (imagePath: Buffer) => boolean;
  /** Record modification times too (off by default: they make every rebuild a change). */
  mtimes?: boolean;
  /**
   * Told each content path as soon as it is known (a VCS can start staging during the walk), with what
   * the host said of it when the source is a directory.
   */
  onContent?: (imagePath: Buffer, stat: HostStat | undefined) => void;
}

export interface Capture {
  /** Every non-volatile path but the metadata file itself, sorted by bytes. */
  records: MetaRecord[];
  /** Image paths whose bytes the VCS stores: regular files (first link of a group) and symlinks. */
  content: Buffer[];
  /** Volatile paths found (shown as ignored; never committed, never deleted by a checkout). */
  volatile: Buffer[];
}

const METADATA = Buffer.from(METADATA_PATH);
const REPO_DIRS = [Buffer.from('/.git'), Buffer.from('/.hg')];
const SLASH = 0x2f;
const DOT = 0x2e;
const YIELD_EVERY = 256;
/** Shared by every record without extended attributes (most): records are never changed in place. */
const NO_XATTRS: ReadonlyMap<string, Buffer> = new Map();

/** `/.git`, `/.hg` and everything below: the repository itself, never part of the image. */
export function isRepositoryPath(p: Buffer): boolean {
  if (p[1] !== DOT) return false; // called for every path: most fail here, without comparing
  return REPO_DIRS.some(
    (d) =>
      p.length >= d.length &&
      p.compare(d, 0, d.length, 0, d.length) === 0 &&
      (p.length === d.length || p[d.length] === SLASH),
  );
}

/** Takes the entries one by one, synchronously; `done` gives what was captured. */
function startCapture(opts: CaptureOptions): { take(e: Entry): void; done(): Capture } {
  const records: MetaRecord[] = [];
  const content: Buffer[] = [];
  const volatile: Buffer[] = [];
  // Directories found volatile: everything below them is volatile too, whatever the patterns say.
  const volatileDirs: Buffer[] = [];
  // The recorded paths, as text: only for hardlinks (whose first name may not have been recorded, being
  // volatile), so made at the first one, not for every path of every commit.
  let recorded: Set<string> | undefined;
  // Compared as bytes, without a string per path: a manifest names a handful of volatile directories.
  const underVolatileDir = (p: Buffer): boolean =>
    volatileDirs.some(
      (d) => p.length > d.length && p[d.length] === SLASH && p.compare(d, 0, d.length, 0, d.length) === 0,
    );
  const take = (e: Entry): void => {
    if (isRepositoryPath(e.path) || e.path.equals(METADATA)) return;
    if (e.path.length > 1) {
      const under = underVolatileDir(e.path);
      if (under || opts.isVolatile(e.path)) {
        volatile.push(e.path);
        // A directory below one listed already needs no place of its own.
        if (e.type === 'dir' && !under) volatileDirs.push(e.path);
        return;
      }
    }
    let type = e.type;
    // A link whose first name was volatile (so not recorded) holds the content itself.
    if (type === 'hardlink') {
      recorded ??= new Set(records.map((r) => r.path.toString('latin1')));
      if (!e.linkTarget || !recorded.has(e.linkTarget.toString('latin1'))) type = 'file';
    }
    const rec: MetaRecord = {
      path: e.path,
      type,
      uid: e.uid,
      gid: e.gid,
      mode: e.mode & 0o7777,
      xattrs: e.xattrs.size > 0 ? new Map(e.xattrs) : NO_XATTRS,
    };
    if (type === 'char' || type === 'block') {
      rec.devMajor = e.devMajor ?? 0;
      rec.devMinor = e.devMinor ?? 0;
    }
    if (type === 'hardlink') rec.link = e.linkTarget;
    if (opts.mtimes) rec.mtimeNs = e.mtimeNs;
    records.push(rec);
    recorded?.add(e.path.toString('latin1'));
    if (type === 'file' || type === 'symlink') {
      content.push(e.path);
      opts.onContent?.(e.path, e.hostStat);
    }
  };
  return { take, done: () => ({ records, content, volatile }) };
}

export async function captureEntries(entries: AsyncIterable<Entry>, opts: CaptureOptions): Promise<Capture> {
  const capture = startCapture(opts);
  let seen = 0;
  for await (const e of entries) {
    // The walk itself never waits: a turn of the event loop now and then lets the git processes started
    // beside it (staging) be fed, finish and be followed by the next.
    if (++seen % YIELD_EVERY === 0) await new Promise(setImmediate);
    capture.take(e);
  }
  return capture.done();
}

/** The same from batches (a directory source): no promise per entry. */
async function captureBatches(
  batches: AsyncIterable<readonly Entry[]>,
  opts: CaptureOptions,
): Promise<Capture> {
  const capture = startCapture(opts);
  for await (const batch of batches) {
    for (const e of batch) capture.take(e);
    // A turn of the event loop between batches lets the git processes started beside the walk be fed.
    await new Promise(setImmediate);
  }
  return capture.done();
}

export function captureSource(source: ImageSource, opts: CaptureOptions): Promise<Capture> {
  return source.entryBatches
    ? captureBatches(source.entryBatches(), opts)
    : captureEntries(source.entries(), opts);
}
