// Applies a metadata file to a checked-out tree: make → (content is the VCS's) → lchown → chmod → xattrs
// → mtimes. The file may come from a stranger's repository, so every path is checked before anything is
// touched, nothing is done through a symlink, and privileged bits wait for an explicit --trust.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  renameSync,
  rmdirSync,
  rmSync,
  type Stats,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudletsError } from '../errors.js';
import type { EntryType } from '../stream/entry.js';
import { type MetaRecord, showPath } from './metadata.js';

export interface RestoreOptions {
  /** Create device nodes, setuid/setgid bits and `security.capability` (needs root as well). */
  trust?: boolean;
  /** Defaults to `process.getuid() === 0`. */
  isRoot?: boolean;
  /** The metadata before this change (a checkout's old HEAD): extended attributes it had and the new one lacks are removed. */
  previous?: readonly MetaRecord[];
  /**
   * Restrict the work to these records (every record is still validated). A checkout passes the paths
   * whose metadata or content changed: files the VCS left alone keep their state, as their content does.
   */
  only?: (r: MetaRecord) => boolean;
}

export interface Skipped {
  path: string;
  what: 'device' | 'setuid' | 'capability' | 'owner' | 'xattr' | 'socket' | 'fifo' | 'content' | 'mode';
  why: string;
}

export interface RestoreResult {
  applied: number;
  skipped: Skipped[];
}

const SLASH = 0x2f;

/** Splits an image path into components, refusing anything that could leave the image or enter the repository. */
export function checkImagePath(p: Buffer, where: string): Buffer[] {
  assertImagePath(p, where);
  const parts: Buffer[] = [];
  let start = 1;
  for (let i = 1; i <= p.length && p.length > 1; i++) {
    if (i === p.length || p[i] === SLASH) {
      parts.push(p.subarray(start, i));
      start = i + 1;
    }
  }
  return parts;
}

/** `checkImagePath` without the split: byte checks only, as it runs for every line of a metadata file. */
export function assertImagePath(p: Buffer, where: string): void {
  const bad = (why: string) =>
    new CloudletsError('EPATH', `unsafe path ${JSON.stringify(showPath(p))} in the metadata file: ${why}`, {
      where,
      hint: 'the repository may be malicious; nothing was changed',
    });
  if (p.length === 0 || p[0] !== SLASH) throw bad('not absolute within the image (must start with /)');
  if (p.includes(0)) throw bad('contains a NUL byte');
  if (p.length === 1) return;
  let start = 1;
  let firstEnd = -1;
  for (let i = 1; i <= p.length; i++) {
    if (i === p.length || p[i] === SLASH) {
      const n = i - start;
      if (n === 0) throw bad('has a "//" component');
      if (p[start] === DOT && (n === 1 || (n === 2 && p[start + 1] === DOT)))
        throw bad(`has a "${n === 1 ? '.' : '..'}" component`);
      if (firstEnd < 0) firstEnd = i;
      start = i + 1;
    }
  }
  const first = p.subarray(1, firstEnd);
  if (isReservedName(first, GIT) || isReservedName(first, HG)) throw bad('points into the repository itself');
}

const DOT = 0x2e;
const GIT = Buffer.from('.git');
const HG = Buffer.from('.hg');

/** `name` equals `reserved` (lower-case ASCII) without regard to ASCII case. */
function isReservedName(name: Buffer, reserved: Buffer): boolean {
  if (name.length !== reserved.length) return false;
  for (let i = 0; i < name.length; i++) {
    const b = name[i]!;
    if ((b >= 0x41 && b <= 0x5a ? b | 0x20 : b) !== reserved[i]) return false;
  }
  return true;
}

/** Remembers directories verified to be real directories (not symlinks) inside the image. */
class SafeDirs {
  private readonly ok = new Set<string>();
  constructor(private readonly root: Buffer) {
    this.ok.add('');
  }
  abs(p: Buffer): Buffer {
    return p.length === 1 ? this.root : Buffer.concat([this.root, p]);
  }
  /** Throws unless every parent of `p` is a real directory; the root itself is trusted. */
  checkParents(p: Buffer, where: string): void {
    const s = p.toString('latin1');
    const cut = s.lastIndexOf('/');
    const parent = s.slice(0, cut);
    if (this.ok.has(parent)) return;
    const parts = parent.split('/');
    let cur = '';
    for (let i = 1; i < parts.length; i++) {
      cur += `/${parts[i]}`;
      if (this.ok.has(cur)) continue;
      let st: Stats;
      try {
        st = lstatSync(this.abs(Buffer.from(cur, 'latin1')));
      } catch {
        throw new CloudletsError(
          'EPATH',
          `parent directory ${showPath(Buffer.from(cur, 'latin1'))} is missing`,
          {
            where,
          },
        );
      }
      if (!st.isDirectory()) {
        throw new CloudletsError(
          'EPATH',
          `refusing ${showPath(p)}: parent ${showPath(Buffer.from(cur, 'latin1'))} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`,
          { where, hint: 'the repository may be malicious; a symlinked parent could lead outside the image' },
        );
      }
      this.ok.add(cur);
    }
  }
  markDir(p: Buffer): void {
    this.ok.add(p.length === 1 ? '' : p.toString('latin1'));
  }
}

/** Throws unless every parent directory of `imagePath` inside `dir` is a real directory (no symlink). */
export function assertRealParents(dir: string, imagePath: Buffer): void {
  new SafeDirs(Buffer.from(dir.replace(/\/+$/, ''))).checkParents(imagePath, dir);
}

function lstatOrUndefined(p: Buffer): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function typeOf(st: Stats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

let tempCounter = 0;

/**
 * Makes a special file with an external program. Programs take string arguments only, so the node is
 * made under a plain temporary name in the image root and renamed to its (byte) path.
 */
function makeSpecial(
  root: Buffer,
  abs: Buffer,
  cmd: string,
  args: (tmp: string) => string[],
  where: string,
): void {
  const tmp = `${root.toString('utf8')}/.cloudlets-node-${process.pid}-${tempCounter++}`;
  const res = spawnSync(cmd, args(tmp), { stdio: ['ignore', 'ignore', 'pipe'] });
  if (res.error || res.status !== 0) {
    throw new CloudletsError(
      'EEXTERNAL',
      `${cmd} failed: ${res.error?.message ?? res.stderr.toString().trim()}`,
      { where },
    );
  }
  renameSync(tmp, abs);
}

/** A Unix socket file at `abs` (Node removes a listening socket's file on close, so keep a second name). */
async function makeSocket(root: Buffer, abs: Buffer): Promise<void> {
  const tmp = `${root.toString('utf8')}/.cloudlets-sock-${process.pid}-${tempCounter++}`;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => resolve());
  });
  try {
    linkSync(tmp, abs);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Octal escapes for a `# file:` line of `setfattr --restore` (getfattr's own quoting). */
function fattrQuote(b: Buffer): string {
  let out = '';
  for (const c of b) {
    if (c <= 0x20 || c >= 0x7f || c === 0x5c || c === 0x3d || c === 0x22)
      out += `\\${c.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(c);
  }
  return out;
}

/**
 * Validates every record, then makes what the VCS cannot (directories, hardlinks, devices, fifos,
 * sockets) and applies owners, modes, extended attributes and times. Content must already be in place.
 */
export async function restoreMetadata(
  dir: string,
  records: readonly MetaRecord[],
  opts: RestoreOptions = {},
): Promise<RestoreResult> {
  const where = `${dir}/.cloudlet/metadata`;
  const isRoot = opts.isRoot ?? process.getuid?.() === 0;
  const privileged = isRoot && opts.trust === true;
  const byPath = new Map<string, MetaRecord>();
  for (const r of records) {
    assertImagePath(r.path, where);
    if (r.type === 'hardlink') {
      assertImagePath(r.link!, where);
      const target = byPath.get(r.link!.toString('latin1'));
      if (target?.type !== 'file') {
        throw new CloudletsError(
          'EPATH',
          `hardlink ${showPath(r.path)} must point to a regular file listed before it`,
          {
            where,
            hint: 'the repository may be malicious; nothing was changed',
          },
        );
      }
    }
    byPath.set(r.path.toString('latin1'), r);
  }
  const sorted = [...records].sort((a, b) => Buffer.compare(a.path, b.path));
  const root = Buffer.from(dir.replace(/\/+$/, ''));
  const safe = new SafeDirs(root);
  const skipped: Skipped[] = [];
  const done: MetaRecord[] = [];
  // lstat results still true after the make pass: owners and modes are checked without asking again.
  const known = new Map<MetaRecord, Stats>();
  const skip = (r: MetaRecord, what: Skipped['what'], why: string) =>
    skipped.push({ path: showPath(r.path), what, why });

  // 1. Make: parents come before children in byte order, so each parent is checked before its children.
  for (const r of sorted) {
    if (opts.only && !opts.only(r)) continue;
    const abs = safe.abs(r.path);
    if (r.path.length > 1) safe.checkParents(r.path, where);
    const st = lstatOrUndefined(abs);
    if (st && r.type !== 'hardlink' && typeOf(st) !== r.type) {
      if (r.type === 'dir' || st.isDirectory()) {
        throw new CloudletsError(
          'EPATH',
          `${showPath(r.path)} is a ${typeOf(st)} on disk but a ${r.type} in the metadata`,
          {
            where,
            hint: 'move it away, then run the command again',
          },
        );
      }
      if (r.type === 'file' || r.type === 'symlink') {
        skip(r, 'content', `is a ${typeOf(st)} on disk, not the ${r.type} the repository holds`);
        continue;
      }
      unlinkSync(abs);
    }
    const exists = st !== undefined && typeOf(st) === r.type;
    switch (r.type) {
      case 'dir':
        if (!exists) mkdirSync(abs, { mode: 0o700 });
        safe.markDir(r.path);
        break;
      case 'file':
      case 'symlink':
        if (!exists) {
          skip(r, 'content', 'missing from the checkout');
          continue;
        }
        break;
      case 'hardlink': {
        const target = safe.abs(r.link!);
        const tst = lstatOrUndefined(target);
        if (!tst?.isFile()) {
          skip(r, 'content', `link target ${showPath(r.link!)} is missing`);
          continue;
        }
        if (st && st.ino === tst.ino && st.dev === tst.dev) break;
        if (st?.isDirectory())
          throw new CloudletsError('EPATH', `${showPath(r.path)} is a directory, expected a hardlink`, {
            where,
          });
        if (st) unlinkSync(abs);
        linkSync(target, abs);
        break;
      }
      case 'char':
      case 'block':
        if (!privileged) {
          skip(r, 'device', isRoot ? 'device nodes need --trust' : 'device nodes need root and --trust');
          continue;
        }
        if (!exists || st.rdev !== makedev(r.devMajor ?? 0, r.devMinor ?? 0)) {
          if (exists) unlinkSync(abs);
          const kind = r.type === 'char' ? 'c' : 'b';
          makeSpecial(
            root,
            abs,
            'mknod',
            (t) => ['-m', '0600', '--', t, kind, String(r.devMajor), String(r.devMinor)],
            where,
          );
        }
        break;
      case 'fifo':
        if (!exists) makeSpecial(root, abs, 'mkfifo', (t) => ['-m', '0600', '--', t], where);
        break;
      case 'socket':
        if (!exists) {
          try {
            await makeSocket(root, abs);
          } catch (err) {
            skip(r, 'socket', `could not create: ${(err as Error).message}`);
            continue;
          }
        }
        break;
    }
    if (exists && r.type !== 'hardlink') known.set(r, st);
    done.push(r);
  }

  // 2. Owners (chown clears setuid bits and security.capability, so it goes before modes and xattrs).
  let ownerDenied = false;
  for (const r of done) {
    const abs = safe.abs(r.path);
    const st = known.get(r) ?? lstatSync(abs);
    if (st.uid === r.uid && st.gid === r.gid) continue;
    known.delete(r);
    if (ownerDenied) {
      skip(r, 'owner', 'changing owners needs root');
      continue;
    }
    try {
      lchownSync(abs, r.uid, r.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
      ownerDenied = !isRoot;
      skip(r, 'owner', 'changing owners needs root');
    }
  }

  // 3. Modes, deepest first so a read-only directory is locked last; never through a symlink.
  for (let i = done.length - 1; i >= 0; i--) {
    const r = done[i]!;
    if (r.type === 'symlink') continue;
    const abs = safe.abs(r.path);
    let want = r.mode;
    if (want & 0o6000 && !privileged) {
      want &= ~0o6000;
      skip(
        r,
        'setuid',
        `mode ${r.mode.toString(8)} applied as ${want.toString(8)}: setuid/setgid bits need ${isRoot ? '' : 'root and '}--trust`,
      );
    }
    // Files and directories are changed through an O_NOFOLLOW descriptor; anything else is checked afresh.
    const fresh = r.type === 'file' || r.type === 'dir' || r.type === 'hardlink' ? known.get(r) : undefined;
    const st = fresh ?? lstatSync(abs);
    if (st.isSymbolicLink()) continue;
    if ((st.mode & 0o7777) === want) continue;
    if (r.type === 'file' || r.type === 'dir' || r.type === 'hardlink') {
      let fd: number | undefined;
      try {
        fd = openSync(
          abs,
          constants.O_RDONLY | constants.O_NOFOLLOW | (r.type === 'dir' ? constants.O_DIRECTORY : 0),
        );
      } catch {
        fd = undefined; // unreadable for us (mode 0200 as non-root): fall back to chmod on the checked path
      }
      if (fd !== undefined) {
        try {
          fchmodSync(fd, want);
        } finally {
          closeSync(fd);
        }
        continue;
      }
    }
    try {
      chmodSync(abs, want);
    } catch (err) {
      skip(r, 'mode', (err as Error).message);
    }
  }

  // 4. Extended attributes in one setfattr run; removals of attributes the previous revision had.
  const xattrFile: string[] = [];
  const prev = new Map((opts.previous ?? []).map((r) => [r.path.toString('latin1'), r]));
  const removals: [Buffer, string][] = [];
  for (const r of done) {
    const rel = Buffer.concat([Buffer.from('.'), r.path]);
    const lines: string[] = [];
    for (const [name, value] of [...r.xattrs].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (name === 'security.capability' && !privileged) {
        skip(r, 'capability', `security.capability needs ${isRoot ? '' : 'root and '}--trust`);
        continue;
      }
      if (!isRoot && !name.startsWith('user.')) {
        skip(r, 'xattr', `${name} needs root`);
        continue;
      }
      lines.push(`${fattrQuote(Buffer.from(name))}=0s${value.toString('base64')}`);
    }
    if (lines.length > 0) xattrFile.push(`# file: ${fattrQuote(rel)}`, ...lines, '');
    const before = prev.get(r.path.toString('latin1'));
    if (before) for (const name of before.xattrs.keys()) if (!r.xattrs.has(name)) removals.push([rel, name]);
  }
  if (xattrFile.length > 0) {
    const tmp = mkdtempSync(join(tmpdir(), 'cloudlets-xattr-'));
    try {
      const file = join(tmp, 'restore');
      writeFileSync(file, `${xattrFile.join('\n')}\n`);
      const res = spawnSync('setfattr', ['-h', `--restore=${file}`], {
        cwd: dir,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      if (res.error)
        throw new CloudletsError('EEXTERNAL', `setfattr: ${res.error.message}`, {
          where: dir,
          hint: 'install attr (Debian: apt-get install attr)',
        });
      if (res.status !== 0) {
        for (const line of res.stderr.toString().split('\n').filter(Boolean))
          skipped.push({ path: '', what: 'xattr', why: line });
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
  for (const [rel, name] of removals) {
    spawnSync('setfattr', ['-h', '-x', name, '--', rel.toString('utf8')], { cwd: dir, stdio: 'ignore' });
  }

  // 5. Times last, deepest first, since making a child changes its directory's mtime.
  for (let i = done.length - 1; i >= 0; i--) {
    const r = done[i]!;
    if (r.mtimeNs === undefined) continue;
    const t = Number(r.mtimeNs) / 1e9;
    lutimesSync(safe.abs(r.path), t, t);
  }
  return { applied: done.length, skipped };
}

/** Linux `makedev` for comparing device numbers with `Stats.rdev`. */
function makedev(major: number, minor: number): number {
  return ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12) | ((major & ~0xfff) * 2 ** 32);
}

/**
 * Removes what only the metadata file created (empty directories, hardlinks, devices, fifos, sockets)
 * when a checkout's new revision no longer has it. Files the VCS tracks are its business; volatile
 * files are never listed, so never removed; a directory still holding something stays.
 */
export function removeStale(dir: string, before: readonly MetaRecord[], after: readonly MetaRecord[]): void {
  if (before.length === 0) return;
  const where = `${dir}/.cloudlet/metadata`;
  const keep = new Set(after.map((r) => r.path.toString('latin1')));
  const root = Buffer.from(dir.replace(/\/+$/, ''));
  const safe = new SafeDirs(root);
  const stale = before
    .filter((r) => !keep.has(r.path.toString('latin1')) && r.type !== 'file' && r.type !== 'symlink')
    .sort((a, b) => Buffer.compare(b.path, a.path));
  for (const r of stale) {
    try {
      assertImagePath(r.path, where);
      if (r.path.length === 1) continue;
      safe.checkParents(r.path, where);
    } catch {
      continue; // a parent went away or became a link: nothing of ours to remove there
    }
    const abs = safe.abs(r.path);
    const st = lstatOrUndefined(abs);
    if (!st) continue;
    const t = typeOf(st);
    if (r.type === 'dir') {
      if (t !== 'dir') continue;
      try {
        rmdirSync(abs);
      } catch {
        // not empty: volatile or untracked files live there
      }
    } else if (r.type === 'hardlink' ? t === 'file' : t === r.type) {
      unlinkSync(abs);
    }
  }
}

/** Same metadata (ignoring the path)? */
export function sameRecord(a: MetaRecord, b: MetaRecord): boolean {
  if (a.type !== b.type || a.uid !== b.uid || a.gid !== b.gid || a.mode !== b.mode) return false;
  if (a.devMajor !== b.devMajor || a.devMinor !== b.devMinor || a.mtimeNs !== b.mtimeNs) return false;
  if ((a.link === undefined) !== (b.link === undefined) || (a.link && !a.link.equals(b.link!))) return false;
  if (a.xattrs.size !== b.xattrs.size) return false;
  for (const [k, v] of a.xattrs) if (!b.xattrs.get(k)?.equals(v)) return false;
  return true;
}
