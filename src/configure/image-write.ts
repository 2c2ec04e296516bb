/**
 * Writing into an image directory without ever leaving it: every directory on the way must be a real
 * directory (a symbolic link there could point anywhere on the host), the target must be a regular file
 * or absent, and a file is replaced whole (temporary name in the same directory, then rename) with its
 * mode and owner kept. Reads go through the ImageSource, which resolves links inside the image.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { lstat, mkdir, open, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CloudletsError } from '../errors.js';

/** The components of an image path; refuses anything but a plain absolute path below the root. */
export function imagePathSegments(imagePath: string): string[] {
  const segments = imagePath.split('/').slice(1);
  if (
    !imagePath.startsWith('/') ||
    imagePath.includes('\0') ||
    segments.length === 0 ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new CloudletsError('EPATH', 'not a plain image path (absolute, no "." or ".." parts)', {
      where: imagePath,
    });
  }
  return segments;
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface WriteTarget {
  /** The host path to write. */
  hostPath: string;
  /** The target as it is now; undefined when it does not exist yet. */
  stats: Stats | undefined;
}

/**
 * Resolves an image path to a host path for writing, checking every component with lstat.
 * `createParents` makes missing directories (mode 0755) instead of failing.
 */
export async function writeTarget(
  root: string,
  imagePath: string,
  opts: { createParents?: boolean } = {},
): Promise<WriteTarget> {
  const segments = imagePathSegments(imagePath);
  let current = root;
  for (const [i, segment] of segments.entries()) {
    current = join(current, segment);
    const last = i === segments.length - 1;
    let st = await lstatOrUndefined(current).catch((err: NodeJS.ErrnoException) => {
      throw new CloudletsError('EOUTPUT', `cannot be examined (${err.code ?? err.message})`, {
        where: imagePath,
      });
    });
    if (last) {
      if (st && !st.isFile()) {
        const what = st.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';
        throw new CloudletsError('EPATH', `is ${what}; only a regular file is written in place`, {
          where: imagePath,
        });
      }
      return { hostPath: current, stats: st };
    }
    if (!st && opts.createParents) {
      await mkdir(current, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      st = await lstat(current);
    }
    const prefix = `/${segments.slice(0, i + 1).join('/')}`;
    if (!st) throw new CloudletsError('EPATH', `directory ${prefix} does not exist`, { where: imagePath });
    if (st.isSymbolicLink()) {
      throw new CloudletsError('EPATH', `${prefix} is a symbolic link; refusing to write through it`, {
        where: imagePath,
        hint: 'a link inside the image may point anywhere on this machine',
      });
    }
    if (!st.isDirectory())
      throw new CloudletsError('EPATH', `${prefix} is not a directory`, { where: imagePath });
  }
  throw new Error('unreachable');
}

export interface Ownership {
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  uid: number;
  gid: number;
}

/**
 * Replaces (or creates) `target` with `data` in one rename, keeping `owner`. Errors name `imagePath`.
 */
export async function writeAtomically(
  target: WriteTarget,
  data: Buffer,
  owner: Ownership,
  imagePath: string,
): Promise<void> {
  const temp = `${target.hostPath}.cloudlets-${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.writeFile(data);
      await chownKeeping(handle, owner, imagePath);
      // After chown, which clears setuid/setgid.
      await handle.chmod(owner.mode & 0o7777);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target.hostPath);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    if (err instanceof CloudletsError) throw err;
    throw new CloudletsError('EOUTPUT', `cannot be written: ${(err as Error).message}`, {
      where: imagePath,
      cause: err,
    });
  }
}

async function chownKeeping(
  handle: Awaited<ReturnType<typeof open>>,
  owner: Ownership,
  imagePath: string,
): Promise<void> {
  try {
    await handle.chown(owner.uid, owner.gid);
  } catch (err) {
    // Not root: the file can only keep an owner that is already ours.
    const st = await handle.stat();
    if (st.uid !== owner.uid || st.gid !== owner.gid) {
      throw new CloudletsError(
        'EOUTPUT',
        `cannot keep its owner ${owner.uid}:${owner.gid} (${(err as NodeJS.ErrnoException).code})`,
        {
          where: imagePath,
          hint: 'configure the image as root, or as the owner of its files',
        },
      );
    }
  }
}
