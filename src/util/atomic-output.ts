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

function refuse(path: string): CloudletsError {
  return new CloudletsError('EEXIST', 'the output file exists', {
    where: path,
    hint: 'pass --force to replace it',
  });
}

export async function openAtomicOutput(path: string, opts: AtomicOutputOptions = {}): Promise<AtomicOutput> {
  if (!opts.force && (await exists(path))) throw refuse(path);
  const tempPath = join(dirname(path), `.${basename(path)}.cloudlets-${randomBytes(4).toString('hex')}.tmp`);
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
  });
  let state: 'open' | 'committed' | 'aborted' = 'open';

  const abort = async () => {
    if (state !== 'open') return;
    state = 'aborted';
    stream.destroy();
    await finished(stream).catch(() => undefined);
    await unlink(tempPath).catch(() => undefined);
  };

  const commit = async () => {
    if (state !== 'open') throw new Error(`atomic output ${path} already ${state}`);
    try {
      stream.end();
      await finished(stream);
      if (opts.force) {
        // The old output goes first, then the new one moves in, as for disks (src/build/output.ts): renaming
        // over an existing file makes ext4 (auto_da_alloc, on by default) start writing the whole new file
        // out inside rename(), ~130 ms for a 300 MB archive, as `tar` truncating an existing archive pays
        // on close(). A reader still never sees a partial archive; for an instant it sees none.
        await unlink(path).catch(() => undefined);
        await rename(tempPath, path);
      } else {
        // link() fails if `path` appeared meanwhile, where rename() would silently replace it.
        try {
          await link(tempPath, path);
          await unlink(tempPath);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EEXIST') throw refuse(path);
          if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
          await rename(tempPath, path); // filesystems without hard links
        }
      }
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
