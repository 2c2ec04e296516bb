/**
 * An output file that appears whole or not at all: written under a temporary name in the same directory
 * (so the final rename stays on one filesystem and is atomic), renamed on commit, removed on abort.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { link, lstat, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { finished } from 'node:stream/promises';
import { CloudletsError } from '../errors.js';
import { releaseCachedPages } from './page-cache.js';

export interface AtomicOutputOptions {
  /** Replace an existing file at `path` (default false: EEXIST). */
  force?: boolean;
}

export interface AtomicOutput {
  stream: WriteStream;
  /** The temporary file's descriptor, for synchronous writers; closed by commit and abort. */
  fd: number;
  /** The temporary file being written. */
  tempPath: string;
  /**
   * Ends the stream and moves it into place. No fsync: the promise is "no partial file after an
   * interruption or an error", as `tar -cf` gives, not durability across a power cut (an fsync of a
   * 300 MB archive costs as much as writing it).
   */
  commit(): Promise<void>;
  /** Stops writing and removes the temporary file. Safe to call more than once, and after commit. */
  abort(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new CloudletsError('EOUTPUT', `cannot check the output: ${(err as Error).message}`, {
      where: path,
    });
  }
}

/** A temporary name beside `path`: on the same filesystem, so that the final rename is atomic. */
export function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.cloudlets-${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Moves the complete file `tempPath` to `path`; `refuse` makes the error for an output that appeared
 * meanwhile without `force`.
 *
 * With `force` the old output goes first, then the new one moves in: a reader still never sees a partial
 * file (for an instant it sees none). Renaming over an existing file would be one step, but ext4
 * (auto_da_alloc, on by default) then starts writing the whole new file out inside rename(), as an fsync
 * would: 170 ms for a 300 MB disk image, 127 ms for the 300 MB benchmark archive (tar truncating an
 * existing archive pays the same on close()). A directory at `path` makes rename fail.
 */
export async function moveIntoPlace(
  tempPath: string,
  path: string,
  opts: { force: boolean; refuse: (path: string) => CloudletsError },
): Promise<void> {
  if (opts.force) {
    await unlink(path).catch(() => undefined);
    await rename(tempPath, path);
    return;
  }
  // link() fails if `path` appeared meanwhile, where rename() would silently replace it.
  try {
    await link(tempPath, path);
    await unlink(tempPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw opts.refuse(path);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    await rename(tempPath, path); // filesystems without hard links
  }
}

function refuse(path: string): CloudletsError {
  return new CloudletsError('EEXIST', 'the output file exists', {
    where: path,
    hint: 'pass --force to replace it',
  });
}

export async function openAtomicOutput(path: string, opts: AtomicOutputOptions = {}): Promise<AtomicOutput> {
  if (!opts.force && (await exists(path))) throw refuse(path);
  // An output this one replaces hands back its cached pages for the new file's (see ./page-cache.ts);
  // whatever reads it is done before it goes, on commit or abort.
  const released = opts.force ? releaseCachedPages(path) : undefined;
  const tempPath = temporaryPathFor(path);
  // A high-water mark of several batches lets the producer prepare the next megabytes while the previous
  // ones are written on libuv's thread pool (with the default 16 KiB every 1 MiB write waits to drain).
  const stream = createWriteStream(tempPath, { flags: 'wx', mode: 0o666, highWaterMark: 8 << 20 });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (err) =>
      reject(
        new CloudletsError('EOUTPUT', `cannot create the output: ${err.message}`, {
          where: path,
          cause: err,
        }),
      ),
    );
  }).catch(async (err: unknown) => {
    await released;
    throw err;
  });
  let state: 'open' | 'committed' | 'aborted' = 'open';

  const abort = async () => {
    if (state !== 'open') return;
    state = 'aborted';
    stream.destroy();
    await finished(stream).catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
    await released;
  };

  const commit = async () => {
    if (state !== 'open') throw new Error(`atomic output ${path} already ${state}`);
    try {
      stream.end();
      await finished(stream);
      await released;
      await moveIntoPlace(tempPath, path, { force: opts.force ?? false, refuse });
      state = 'committed';
    } catch (err) {
      await abort();
      if (err instanceof CloudletsError) throw err;
      throw new CloudletsError('EOUTPUT', `cannot write the output: ${(err as Error).message}`, {
        where: path,
        cause: err,
      });
    }
  };

  // Typed as possibly null because it is before 'open'; this function returns only after it.
  const fd = (stream as unknown as { fd: number }).fd;
  return { stream, fd, tempPath, commit, abort };
}
