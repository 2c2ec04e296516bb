// The stat cache a commit goes by: a file called unchanged must be unchanged for git too, and anything
// this reader does not know must send the commit back to git's own refresh.
import { lstatSync, mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gitIn, tempDirsPerTest } from '../../test/helpers.js';
import type { HostStat } from '../stream/entry.js';
import { readGitIndex } from './git-index.js';
import { commitImage } from './repo.js';

const git = gitIn;
const tempDir = tempDirsPerTest('cloudlets-index-');

const hostStat = (file: string): HostStat => {
  const st = lstatSync(file, { bigint: true });
  return {
    mode: Number(st.mode),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtimeSec: Number(st.mtimeNs / 1_000_000_000n),
    mtimeNsec: Number(st.mtimeNs % 1_000_000_000n),
    ctimeSec: Number(st.ctimeNs / 1_000_000_000n),
    ctimeNsec: Number(st.ctimeNs % 1_000_000_000n),
    inoLow32: Number(st.ino % 2n ** 32n),
  };
};

/** A repository with files whose times are in the past, so that no entry is racily clean. */
function repoWith(files: string[]): string {
  const dir = tempDir();
  git(dir, 'init', '-q');
  const past = new Date(Date.now() - 3600_000);
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), `content of ${f}\n`);
    utimesSync(join(dir, f), past, past);
  }
  git(dir, 'add', '-A');
  return dir;
}

describe('readGitIndex', () => {
  it('finds entries in walk order and trusts only an exact, settled stat match', () => {
    const dir = repoWith(['a/x', 'a-b', 'b', 'z/y']);
    const index = readGitIndex(join(dir, '.git', 'index'))!;
    expect(index).toBeDefined();
    expect(Array.from({ length: index.length }, (_, i) => index.path(i).toString())).toEqual([
      'a-b',
      'a/x',
      'b',
      'z/y',
    ]);
    // The walk's order (byte order of image paths), then a query out of order.
    expect(['/a-b', '/a/x', '/a/y', '/b', '/z/y', '/b'].map((p) => index.find(Buffer.from(p)))).toEqual([
      0, 1, -1, 2, 3, 2,
    ]);
    const b = index.find(Buffer.from('/b'));
    expect(index.unchanged(b, hostStat(join(dir, 'b')))).toBe(true);
    // Same size, same modification time, new content: only the inode change time tells.
    const st = lstatSync(join(dir, 'b'));
    writeFileSync(join(dir, 'b'), 'CONTENT OF b\n');
    utimesSync(join(dir, 'b'), st.atime, st.mtime);
    expect(index.unchanged(b, hostStat(join(dir, 'b')))).toBe(false);
  });

  it('calls a file dated as late as the index itself changed (racily clean)', () => {
    const dir = tempDir();
    git(dir, 'init', '-q');
    writeFileSync(join(dir, 'f'), 'x\n');
    // Dated after the index will be written: the stat data git records proves nothing about the content.
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'f'), later, later);
    git(dir, 'add', 'f');
    const index = readGitIndex(join(dir, '.git', 'index'))!;
    expect(index.find(Buffer.from('/f'))).toBe(0);
    expect(index.unchanged(0, hostStat(join(dir, 'f')))).toBe(false);
  });

  it('gives up on what it does not read: version 4, a split index, no index', () => {
    const dir = repoWith(['a', 'b']);
    expect(readGitIndex(join(dir, '.git', 'missing'))).toBeUndefined();
    git(dir, 'update-index', '--index-version', '4');
    expect(readGitIndex(join(dir, '.git', 'index'))).toBeUndefined();
    git(dir, 'update-index', '--index-version', '2');
    git(dir, 'update-index', '--split-index');
    expect(readGitIndex(join(dir, '.git', 'index'))).toBeUndefined();
    git(dir, 'update-index', '--no-split-index');
    expect(readGitIndex(join(dir, '.git', 'index'))?.length).toBe(2);
  });
});

describe('commit by the stat cache', () => {
  it('records a change that kept the size and modification time, and a file back from deletion', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc', 'same-size'), 'aaaa\n');
    writeFileSync(join(dir, 'etc', 'gone'), 'bye\n');
    await commitImage(dir, { message: 'one' });
    const st = lstatSync(join(dir, 'etc', 'same-size'));
    writeFileSync(join(dir, 'etc', 'same-size'), 'bbbb\n');
    utimesSync(join(dir, 'etc', 'same-size'), st.atime, st.mtime);
    rmSync(join(dir, 'etc', 'gone'));
    writeFileSync(join(dir, 'etc', 'new'), 'hello\n');
    const two = await commitImage(dir, { message: 'two' });
    expect(two.changes).toEqual({
      added: ['/etc/new'],
      modified: ['/etc/same-size'],
      deleted: ['/etc/gone'],
    });
    expect(git(dir, 'show', 'HEAD:etc/same-size')).toBe('bbbb');
    expect(git(dir, 'status', '--porcelain')).toBe('');
    writeFileSync(join(dir, 'etc', 'gone'), 'back\n');
    const three = await commitImage(dir, { message: 'three' });
    expect(three.changes.added).toEqual(['/etc/gone']);
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });

  it('commits the same with an index it does not read (git refreshes it itself)', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    writeFileSync(join(dir, 'etc', 'a'), 'a\n');
    writeFileSync(join(dir, 'etc', 'b'), 'b\n');
    await commitImage(dir, { message: 'one' });
    git(dir, 'update-index', '--index-version', '4');
    expect(readGitIndex(join(dir, '.git', 'index'))).toBeUndefined();
    writeFileSync(join(dir, 'etc', 'a'), 'A, longer\n');
    rmSync(join(dir, 'etc', 'b'));
    const two = await commitImage(dir, { message: 'two' });
    expect(two.changes).toEqual({ added: [], modified: ['/etc/a'], deleted: ['/etc/b'] });
    expect(git(dir, 'show', 'HEAD:etc/a')).toBe('A, longer');
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });
});
