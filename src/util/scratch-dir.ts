// Work directories for host tools: where a build's GRUB files go (scratchBase), and a removal that
// never throws for every command's temporary directories (removeWorkDir).
//
// grub-mkimage fsyncs its output before it exits. On a disk that fsync waits for the device, behind
// whatever else is queued there (the previous build's output still being written back): measured on a
// VM, each build's main thread stalled ~140 ms in its own reads meanwhile (3 builds of 4; with a tmpfs
// none did, and a qcow2 build took 0.985 -> 0.910 s, median of 10). A file in RAM that is removed a
// moment later has nothing to sync, so these files go to a tmpfs when there is one.
import { accessSync, constants, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';

/** statfs(2)'s f_type of a tmpfs. */
const TMPFS_MAGIC = 0x01021994;

/** Linux's usual tmpfs for anyone's temporary files (mode 1777). */
const SHM = '/dev/shm';

function isWritableTmpfs(dir: string): boolean {
  try {
    if (statfsSync(dir).type !== TMPFS_MAGIC) return false;
    accessSync(dir, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The directory for a build's scratch files: the temporary directory (TMPDIR) when it is a tmpfs, else
 * /dev/shm when it is a writable tmpfs, else the temporary directory as it is.
 */
export function scratchBase(): string {
  return pickScratchBase(tmpdir(), SHM);
}

/** scratchBase's choice between a temporary directory and a shared-memory one. */
export function pickScratchBase(tmp: string, shm: string): string {
  if (isWritableTmpfs(tmp)) return tmp;
  if (isWritableTmpfs(shm)) return shm;
  return tmp;
}

/**
 * Removes a work directory, for `finally` blocks and exit handlers: it never throws (that would hide the
 * error on its way out, or replace the exit code). A child process killed just before may still create
 * a file as the removal goes on: rmdir then fails with ENOTEMPTY, and is tried again. What cannot be
 * removed is left behind, better than a lost error.
 */
export function removeWorkDir(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 10 });
  } catch {
    // Left behind.
  }
}
