// Positional I/O on the container file, with the output path in every error. Container writers place
// blocks at offsets they choose (allocation on first touch), so they need pwrite, not a stream.
import { type FileHandle, open } from 'node:fs/promises';
import { writeFully } from '../disk/raw-target.js';
import { CloudletsError } from '../errors.js';

export interface OutputFile {
  readonly path: string;
  /** Writes all of `data` at `offset`. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** Writes all of `parts`, one after another, from `offset` (one system call where it can). */
  writev(offset: number, parts: Buffer[]): Promise<void>;
  /** Fills `into` from `offset` (zeros past the end of the file). */
  read(offset: number, into: Buffer): Promise<void>;
  truncate(size: number): Promise<void>;
  /**
   * Closes; with `sync: true` fsyncs first. Disk builds do not ask for it: a build is atomic (a temporary
   * name renamed into place), not durable across a power loss (see src/disk/raw-target.ts, NO_FSYNC).
   */
  close(sync?: boolean): Promise<void>;
}

export function outputError(path: string, cause: unknown, doing = 'writing the disk image'): CloudletsError {
  if (cause instanceof CloudletsError) return cause;
  return new CloudletsError('EOUTPUT', `${doing} failed: ${(cause as Error).message}`, {
    where: path,
    cause,
  });
}

/** Creates (or truncates) `path`. */
export async function openOutputFile(path: string): Promise<OutputFile> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'w+');
  } catch (cause) {
    throw outputError(path, cause, 'creating the disk image');
  }
  let closed = false;
  return {
    path,
    async write(offset, data) {
      try {
        await writeFully(fh, data, offset);
      } catch (cause) {
        throw outputError(path, cause);
      }
    },
    async writev(offset, parts) {
      try {
        let pos = offset;
        const rest = parts.filter((p) => p.length > 0);
        while (rest.length > 0) {
          const { bytesWritten } = await fh.writev(rest, pos);
          pos += bytesWritten;
          let n = bytesWritten;
          while (rest.length > 0 && n >= rest[0]!.length) n -= rest.shift()!.length;
          if (n > 0) rest[0] = rest[0]!.subarray(n);
        }
      } catch (cause) {
        throw outputError(path, cause);
      }
    },
    async read(offset, buf) {
      const length = buf.length;
      let done = 0;
      try {
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
      } catch (cause) {
        throw outputError(path, cause, 'reading back the spill file');
      }
      buf.fill(0, done);
    },
    async truncate(size) {
      try {
        await fh.truncate(size);
      } catch (cause) {
        throw outputError(path, cause);
      }
    },
    async close(sync = false) {
      if (closed) return;
      closed = true;
      try {
        if (sync) await fh.sync();
      } catch (cause) {
        await fh.close().catch(() => {});
        throw outputError(path, cause);
      }
      await fh.close();
    },
  };
}

const ZEROS = Buffer.alloc(1024 * 1024);

/** True when every byte of `data` is zero (compared against a zero page, i.e. memcmp speed). */
export function isZero(data: Uint8Array): boolean {
  for (let at = 0; at < data.length; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, data.length - at);
    if (Buffer.compare(data.subarray(at, at + n), ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

/** Checks a write's bounds against the virtual size: a writer bug, not a user error. */
export function checkWrite(size: number, offset: number, data: Uint8Array, finished: boolean): void {
  if (finished) throw new Error('internal error: write after finish');
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > size) {
    throw new Error(`internal error: write of ${data.length} bytes at ${offset} outside a ${size}-byte disk`);
  }
}

export const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;
