// `cloudlets init`: propose a manifest for an existing root filesystem and write it, atomically.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CloudletsError } from '../errors.js';
import { type Detection, detectManifest } from './detect.js';

export { DEFAULT_KERNEL_CMDLINE, type Detected, type Detection, detectManifest } from './detect.js';
export { type ElfInfo, parseElfHeader } from './elf.js';
export { type Resolved, readHead, resolveInRoot } from './resolve.js';

export interface InitOptions {
  /** Replace an existing manifest. Default false: an existing one is refused (EEXIST). */
  force?: boolean;
  /** Detect and return the manifest without writing anything. Default false. */
  dryRun?: boolean;
}

export interface InitResult extends Detection {
  /** Host path of the manifest: DIR/.cloudlet/manifest. */
  manifestPath: string;
  written: boolean;
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Writes `text` to `path` through a temporary name in the same directory and a rename. */
async function writeAtomically(path: string, dir: string, text: string): Promise<void> {
  const temp = join(dir, `.manifest.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw new CloudletsError('EOUTPUT', `cannot write the manifest: ${(err as Error).message}`, {
      where: path,
      cause: err,
    });
  }
}

/** Detects a starter manifest for the root filesystem `dir` and writes it to `dir/.cloudlet/manifest`. */
export async function initImage(dir: string, opts: InitOptions = {}): Promise<InitResult> {
  // stat, not lstat: DIR itself may be a link, the user named it.
  const rootStats = await stat(dir).catch(() => undefined);
  if (!rootStats?.isDirectory()) throw new CloudletsError('ESOURCE', 'not a directory', { where: dir });
  const root = dir;
  const metaDir = join(root, '.cloudlet');
  const manifestPath = join(metaDir, 'manifest');
  const meta = await lstatOrUndefined(metaDir);
  if (meta && !meta.isDirectory()) {
    // A link here could point anywhere on the host; writing through it is refused.
    throw new CloudletsError(
      'EPATH',
      'is not a directory (a symbolic link or a file); refusing to write through it',
      {
        where: metaDir,
      },
    );
  }
  if (!opts.dryRun && !opts.force && (await lstatOrUndefined(manifestPath))) {
    throw new CloudletsError('EEXIST', 'a manifest exists already', {
      where: manifestPath,
      hint: 'use --force to replace it, or --dry-run to see the proposal',
    });
  }
  const detection = await detectManifest(root);
  if (opts.dryRun) return { ...detection, manifestPath, written: false };
  if (!meta) await mkdir(metaDir, { mode: 0o755 });
  await writeAtomically(manifestPath, metaDir, `${JSON.stringify(detection.manifest, null, 2)}\n`);
  return { ...detection, manifestPath, written: true };
}
