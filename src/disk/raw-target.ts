/**
 * A raw disk image as a sparse file: created empty and sized with ftruncate, so regions never written
 * are holes that read as zeros and take no space.
 */
import { open } from 'node:fs/promises';
import { CloudletsError } from '../errors.js';
import type { BlockTarget } from './target.js';

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
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
          done += bytesWritten;
        }
      } catch (cause) {
        throw fail(cause);
      }
    },
    async finish(): Promise<void> {
      if (finished) return;
      finished = true;
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
  };
}
