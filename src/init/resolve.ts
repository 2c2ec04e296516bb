/**
 * Looking at a root filesystem on the host without ever leaving it: paths are resolved the way a chroot
 * would resolve them (a symlink's absolute target starts at the root, `..` stops at the root), one
 * component at a time with lstat, so a link like `/sbin/init -> /../../etc/shadow` lands inside the root.
 */
import type { Stats } from 'node:fs';
import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** The kernel's limit on links followed in one lookup; also what stops link loops. */
const MAX_LINKS = 40;

export interface Resolved {
  /** The image path after following links: `/usr/lib/systemd/systemd` for `/sbin/init`. */
  imagePath: string;
  /** Where that is on the host, inside the root. */
  hostPath: string;
  /** lstat of the final component: never a symlink. */
  stats: Stats;
}

const split = (p: string) => p.split('/').filter((c) => c !== '' && c !== '.');

/** Resolves `imagePath` inside `root`; undefined when it does not exist (or links loop or dangle). */
export async function resolveInRoot(root: string, imagePath: string): Promise<Resolved | undefined> {
  const pending = split(imagePath);
  const resolved: string[] = [];
  let links = 0;
  let stats: Stats = await lstat(root);
  for (let comp = pending.shift(); comp !== undefined; comp = pending.shift()) {
    if (comp === '..') {
      resolved.pop();
      stats = await lstat(join(root, ...resolved));
      continue;
    }
    if (!stats.isDirectory()) return undefined;
    const host = join(root, ...resolved, comp);
    try {
      stats = await lstat(host);
    } catch {
      return undefined;
    }
    if (stats.isSymbolicLink()) {
      if (++links > MAX_LINKS) return undefined;
      const target = await readlink(host);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...split(target));
      stats = await lstat(join(root, ...resolved));
      continue;
    }
    resolved.push(comp);
  }
  return { imagePath: `/${resolved.join('/')}`, hostPath: join(root, ...resolved), stats };
}

/** The first `length` bytes of a regular file inside the root, or undefined when it is not one. */
export async function readHead(root: string, imagePath: string, length: number): Promise<Buffer | undefined> {
  const found = await resolveInRoot(root, imagePath);
  if (!found?.stats.isFile()) return undefined;
  // O_NOFOLLOW and O_NONBLOCK: if the file was swapped for a link or a fifo since the lstat, fail, never hang.
  const handle = await open(
    found.hostPath,
    constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
  ).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buf, 0, length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
