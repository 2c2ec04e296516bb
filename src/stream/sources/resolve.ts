/**
 * Path resolution inside an image, shared by every source (directory, archive): symlinks are followed
 * as the kernel would if the image were the root filesystem (an absolute target starts again at the
 * image root), except that a `..` above the root is an error rather than staying at the root, because a
 * path that tries that is a sign of an image reaching for the host. Nothing here touches the host: the
 * source answers `lstat` for image paths only.
 */
import { CloudletsError } from '../../errors.js';
import type { EntryType } from '../entry.js';

/** What resolution needs to know about one image path, without following a final symlink. */
export interface ResolveStat {
  type: EntryType;
  /** A symlink's target bytes as stored. Other types: ignored. */
  linkTarget?: Buffer | undefined;
}

/** The one question a source answers for resolution. `undefined`: no such path. */
export interface ResolveFs {
  lstat(imagePath: Buffer): Promise<ResolveStat | undefined> | ResolveStat | undefined;
}

export interface ResolveOptions {
  /** Follow a symlink in the last component too (default true; false is `lstat` semantics). */
  followLast?: boolean;
  /** Symlinks followed before giving up, as Linux's MAXSYMLINKS (default 40). */
  maxLinks?: number;
}

export interface Resolved {
  /** The canonical image path reached: `/`, `/etc/hostname`; no symlink on the way. */
  path: Buffer;
  stat: ResolveStat;
}

const SLASH = 0x2f;

function split(path: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === SLASH) {
      if (i > start) parts.push(path.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

function join(parts: Buffer[]): Buffer {
  if (parts.length === 0) return Buffer.from('/');
  const out: Buffer[] = [];
  for (const p of parts) out.push(Buffer.from('/'), p);
  return Buffer.concat(out);
}

const isDot = (p: Buffer) => p.length === 1 && p[0] === 0x2e;
const isDotDot = (p: Buffer) => p.length === 2 && p[0] === 0x2e && p[1] === 0x2e;

/**
 * Resolves `imagePath` (taken from the image root whether or not it starts with `/`) inside the image.
 * Returns `undefined` when a component is missing or a non-directory is used as a directory; throws
 * CloudletsError EPATH when `..` climbs above the root (in the path or in a link target) or when more
 * than `maxLinks` symlinks are met (a loop).
 */
export async function resolveImagePath(
  fs: ResolveFs,
  imagePath: string | Buffer,
  opts: ResolveOptions = {},
): Promise<Resolved | undefined> {
  const followLast = opts.followLast ?? true;
  const maxLinks = opts.maxLinks ?? 40;
  const original = typeof imagePath === 'string' ? imagePath : imagePath.toString('utf8');
  const start = typeof imagePath === 'string' ? Buffer.from(imagePath, 'utf8') : imagePath;
  let pending = split(start); // components still to walk, in order
  const done: Buffer[] = []; // canonical components walked so far
  let links = 0;
  let stat: ResolveStat = { type: 'dir' };

  while (pending.length > 0) {
    const part = pending.shift()!;
    if (isDot(part)) continue;
    if (isDotDot(part)) {
      if (done.length === 0) {
        throw new CloudletsError('EPATH', 'the path climbs above the image root', {
          where: original,
        });
      }
      done.pop();
      continue;
    }
    const candidate = join([...done, part]);
    const st = await fs.lstat(candidate);
    if (!st) return undefined;
    const last = pending.length === 0;
    if (st.type === 'symlink' && (!last || followLast)) {
      if (++links > maxLinks) {
        throw new CloudletsError('EPATH', `more than ${maxLinks} symbolic links on the way (a loop?)`, {
          where: original,
        });
      }
      const target = st.linkTarget ?? Buffer.alloc(0);
      if (target.length === 0) return undefined;
      if (target[0] === SLASH) done.length = 0;
      pending = [...split(target), ...pending];
      continue;
    }
    if (!last && st.type !== 'dir') return undefined;
    done.push(part);
    stat = st;
  }
  if (done.length === 0) {
    const root = await fs.lstat(Buffer.from('/'));
    if (!root) return undefined;
    stat = root;
  }
  return { path: join(done), stat };
}
