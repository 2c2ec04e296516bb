// The raw disk file: a sparse file (src/disk/raw-target.ts) written under a temporary name in the
// output's directory and moved into place only when complete, so an error or an interrupt never leaves
// a partial disk behind. (src/util/atomic-output.ts does the same for streamed outputs; a disk is
// written at random offsets, so it gets a file here, not a stream.)
import { lstatSync, unlinkSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { openRawTarget } from '../disk/raw-target.js';
import type { BlockTarget } from '../disk/target.js';
import { CloudletsError } from '../errors.js';
import { moveIntoPlace, temporaryPathFor } from '../util/atomic-output.js';

export interface AtomicDiskOptions {
  force?: boolean;
  signal?: AbortSignal | undefined;
  /**
   * Opens the target on the temporary file (a container format, src/formats); default a raw sparse file.
   * `abort` closes it without finishing when the build fails.
   */
  open?: ((path: string, size: number) => Promise<BlockTarget & { abort?: () => Promise<void> }>) | undefined;
  /** Told the bytes written to the disk so far, after each write is handed on. */
  onWrite?: ((bytesWritten: number) => void) | undefined;
  /** Awaited before the complete disk replaces `path` (the old output's pages being released). */
  beforeReplace?: Promise<void> | undefined;
}

const refuse = (path: string) =>
  new CloudletsError('EEXIST', 'the output exists', { where: path, hint: 'pass --force to replace it' });

/** Refuses an existing output without `force`; a directory is never replaced. */
export function checkOutput(path: string, force: boolean): void {
  let st: ReturnType<typeof lstatSync> | undefined;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (st.isDirectory()) throw new CloudletsError('EEXIST', 'the output is a directory', { where: path });
  if (!force) throw refuse(path);
}

/**
 * Runs `fn` with a sparse file of `size` bytes as its BlockTarget, then moves the file to `path`.
 * Any failure or abort (checked at every write) removes the temporary file.
 */
export async function withAtomicDisk<T>(
  path: string,
  size: number,
  o: AtomicDiskOptions,
  fn: (target: BlockTarget) => Promise<T>,
): Promise<T> {
  checkOutput(path, o.force ?? false);
  const tmp = temporaryPathFor(path);
  // A normal exit after a signal skips nothing, but a handler that exits the process would skip the
  // finally below: remove the file then too.
  const onExit = () => {
    try {
      unlinkSync(tmp);
    } catch {}
  };
  process.once('exit', onExit);
  const interrupted = () => new CloudletsError('EINTERRUPTED', 'interrupted', { where: path });
  // The temporary file is removed in every case: after link() it is a second name, after rename() gone.
  try {
    const raw: BlockTarget & { abort?: () => Promise<void> } = await (o.open ?? openRawTarget)(tmp, size);
    let written = 0;
    const target: BlockTarget = {
      size,
      write(offset, data) {
        if (o.signal?.aborted) throw interrupted();
        written += data.length;
        o.onWrite?.(written);
        return raw.write(offset, data);
      },
      finish: () => raw.finish(),
    };
    try {
      const result = await fn(target);
      await raw.finish();
      if (o.signal?.aborted) throw interrupted();
      // Whatever reads the old output (dd releasing its pages) is done with it before it goes: its
      // last reference, and the work of freeing it, stay this process's.
      await o.beforeReplace;
      await moveIntoPlace(tmp, path, { force: o.force ?? false, refuse });
      return result;
    } finally {
      await (raw.abort ? raw.abort() : raw.finish()).catch(() => {});
    }
  } finally {
    await unlink(tmp).catch(() => {});
    process.removeListener('exit', onExit);
  }
}
