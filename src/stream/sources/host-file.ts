/**
 * Reading a regular file of a directory image, and the errors reading an image directory reports: the
 * directory source and its walk thread (which reports by error code) say the same thing about the same
 * failure.
 */
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { CloudletsError } from '../../errors.js';
import type { SyncContentReader } from '../entry.js';

const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
/**
 * How a file of an image is opened: never through a symlink swapped in since the walk, and never blocking
 * on a FIFO swapped in (O_NONBLOCK: its open returns at once).
 */
const HOST_FILE_FLAGS = constants.O_RDONLY | O_NOFOLLOW | constants.O_NONBLOCK;

/** One byte read past the expected end, to notice a file that grew; never handed out. */
const PROBE = Buffer.alloc(1);

/**
 * The host path of an image path under the image directory `realRoot` (resolved): the root's own for `/`,
 * else the root's followed by the path.
 */
export function hostPaths(realRoot: string): (path: Buffer) => Buffer {
  const rootHost = Buffer.from(realRoot);
  const prefix = Buffer.from(realRoot === '/' ? '' : realRoot);
  return (path) => (path.length === 1 ? rootHost : Buffer.concat([prefix, path]));
}

/** A failed system call on an image path, as the user sees it: `cannot open: EACCES` at `/etc/shadow`. */
export function sourceErrorFromCode(
  code: string,
  path: Buffer,
  doing: string,
  cause?: unknown,
): CloudletsError {
  return new CloudletsError('ESOURCE', `cannot ${doing}: ${code}`, { where: path.toString('utf8'), cause });
}

export function sourceError(err: unknown, path: Buffer, doing: string): CloudletsError {
  return sourceErrorFromCode((err as NodeJS.ErrnoException).code ?? String(err), path, doing, err);
}

/** A file that is not the size the walk saw when its content was read. */
function changedSizeError(path: Buffer, size: number): CloudletsError {
  return new CloudletsError('ESOURCE', `changed size while being read (expected ${size} bytes)`, {
    where: path.toString('utf8'),
    hint: 'stop whatever is writing to the image and try again',
  });
}

/** Opens a regular file for positional reads; closing checks it did not change size while read. */
export function openHostFile(host: Buffer, path: Buffer, size: number): SyncContentReader {
  let fd: number;
  try {
    fd = openSync(host, HOST_FILE_FLAGS);
  } catch (err) {
    throw sourceError(err, path, 'open');
  }
  let open = true;
  /** The end of the file was seen where the walk said (a read of the last bytes asked one more). */
  let endSeen = false;
  let grew = false;
  return {
    read(buf, offset, length, position) {
      try {
        // The last bytes: one more is asked for when the buffer has room, so that a file that grew shows
        // here, sparing a read past the end at close (a system call per file). Nothing past `length` is
        // written unless the file grew, and that fails at close.
        if (position + length === size && offset + length < buf.length && length > 0) {
          const n = readSync(fd, buf, offset, length + 1, position);
          if (n > length) {
            grew = true;
            return length;
          }
          endSeen = n === length;
          return n;
        }
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
        if (
          bytesRead >= 0 &&
          (grew || bytesRead !== size || (!endSeen && readSync(fd, PROBE, 0, 1, bytesRead) !== 0))
        ) {
          throw changedSizeError(path, size);
        }
      } finally {
        closeSync(fd);
      }
    },
  };
}
