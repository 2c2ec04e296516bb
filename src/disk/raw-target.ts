/**
 * A raw disk image as a sparse file: created empty and sized with ftruncate, so regions never written
 * are holes that read as zeros and take no space.
 */
import { type FileHandle, open } from 'node:fs/promises';
import { CloudletsError } from '../errors.js';
import type { BlockTarget } from './target.js';

/*
 * NO_FSYNC. finish() closes the file without fsync, on purpose. What a build promises is atomicity: the
 * output appears under its name complete or not at all (the caller writes a temporary file and renames
 * it), and that holds for every failure of the process, since the page cache holds what was written. An
 * fsync only adds durability across a power loss or kernel crash in the seconds after the build, for an
 * artifact that is rebuilt from its inputs in seconds, and it costs the time of writing the whole image
 * to the device (hundreds of milliseconds for a 1 GiB disk, far more on slow storage). Callers wanting
 * durability run `sync` (or fsync the file) themselves. The container formats (src/formats) do the same.
 */

export interface RawTarget extends BlockTarget {
  readonly path: string;
}

/** Creates (or truncates) `path` to an all-hole file of `size` bytes. */
export async function openRawTarget(path: string, size: number): Promise<RawTarget> {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new CloudletsError('EUSAGE', `bad disk size ${size}`, { where: path });
  }
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'w+');
    await fh.truncate(size);
  } catch (cause) {
    throw new CloudletsError('EOUTPUT', `cannot create the disk image: ${(cause as Error).message}`, {
      where: path,
      cause,
    });
  }
  let finished = false;
  const fail = (cause: unknown): CloudletsError =>
    new CloudletsError('EOUTPUT', `writing the disk image failed: ${(cause as Error).message}`, {
      where: path,
      cause,
    });
  return {
    path,
    size,
    async write(offset: number, data: Buffer): Promise<void> {
      if (finished) throw new Error('internal error: write after finish');
      if (offset < 0 || offset + data.length > size) {
        throw new Error(
          `internal error: write of ${data.length} bytes at ${offset} outside a ${size}-byte disk`,
        );
      }
      try {
        await writeFully(fh, data, offset);
      } catch (cause) {
        throw fail(cause);
      }
    },
    async finish(): Promise<void> {
      if (finished) return;
      finished = true;
      // No fsync: see NO_FSYNC below.
      try {
        await fh.close();
      } catch (cause) {
        throw fail(cause);
      }
    },
  };
}

/** Writes all of `data` at `offset`: a positional write may take fewer bytes than asked. */
export async function writeFully(fh: FileHandle, data: Uint8Array, offset: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}
