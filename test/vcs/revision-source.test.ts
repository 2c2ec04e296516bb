// `IMAGE@REV`: a past revision read straight from the repository equals the tree it was committed from.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Entry, ImageSource } from '../../src/stream/entry.js';
import { openDirectorySource } from '../../src/stream/sources/dir.js';
import { isRepositoryPath } from '../../src/vcs/capture.js';
import { commitImage } from '../../src/vcs/repo.js';
import { openRevisionSource } from '../../src/vcs/revision-source.js';
import { isRoot, tempDir } from '../helpers.js';
import { makeEveryKindTree } from './tree.js';

Object.assign(process.env, {
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@e',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@e',
});

async function listing(source: ImageSource): Promise<string[]> {
  const out: string[] = [];
  for await (const e of source.entries() as AsyncIterable<Entry>) {
    let content = '';
    if (e.content) for await (const c of e.content()) content += c.toString('base64');
    const xattrs = [...e.xattrs]
      .map(([k, v]) => `${k}=${v.toString('base64')}`)
      .sort()
      .join(',');
    out.push(
      [
        e.path.toString('latin1'),
        e.type,
        e.mode.toString(8),
        e.uid,
        e.gid,
        e.size,
        e.linkTarget?.toString('latin1') ?? '',
        e.devMajor ?? '',
        e.devMinor ?? '',
        xattrs,
        content,
      ].join('|'),
    );
  }
  return out;
}

describe('openRevisionSource', () => {
  const tmp = tempDir('cloudlets-vcs-rev-');
  afterAll(() => {
    spawnSync('chmod', ['-R', 'u+rwx', tmp.path]);
    tmp.remove();
  });

  it('yields the committed tree, not the current one, without checking anything out', async () => {
    const img = join(tmp.path, 'img');
    mkdirSync(img);
    await makeEveryKindTree(img, { root: isRoot, newlineNames: true });
    rmSync(join(img, 'tmp/junk'));
    rmSync(join(img, 'var/log/syslog'));
    const first = await commitImage(img, { message: 'one' });
    const dirSource = openDirectorySource(img, { prune: isRepositoryPath });
    const expected = await listing(dirSource);
    // Change the tree and commit again: the first revision must still read as it was.
    writeFileSync(join(img, 'etc/hostname'), 'changed\n');
    chmodSync(join(img, 'usr/bin/tool'), 0o700);
    await commitImage(img, { message: 'two' });
    const rev = await openRevisionSource(img, first.rev!);
    try {
      // The directory source sees the live mtime and inode-derived kinds; compare what a revision keeps.
      expect(await listing(rev)).toEqual(expected);
      expect((await rev.readFile('/etc/hostname'))?.toString()).toBe('host1\n');
      expect((await rev.readFile('/usr/bin/hostname-link'))?.toString()).toBe('host1\n');
      expect(await rev.readFile('/nope')).toBeUndefined();
      await expect(rev.readFile('/etc')).rejects.toThrow(/not a regular file/);
    } finally {
      await rev.close?.();
    }
    // Nothing was checked out: plain git sees no change but the nested repository living under its real name.
    const porcelain = execFileSync('git', [
      '-C',
      img,
      'status',
      '--porcelain',
      '--untracked-files=no',
    ]).toString();
    expect(porcelain.split('\n').filter((l) => l && !l.includes('.git.cloudlets-escaped/'))).toEqual([]);
  });

  it('reads a revision made by plain git (no metadata file) with git modes and root owner', async () => {
    const dir = join(tmp.path, 'plain');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin/run'), '#!/bin/sh\n');
    chmodSync(join(dir, 'bin/run'), 0o755);
    symlinkSync('bin/run', join(dir, 'link'));
    const g = (...a: string[]) => execFileSync('git', ['-C', dir, ...a]);
    g('init', '-q');
    g('add', '-A');
    g('commit', '-q', '-m', 'plain');
    const rev = await openRevisionSource(dir, 'HEAD');
    const rows = (await listing(rev)).map((r) => r.split('|').slice(0, 7).join('|'));
    expect(rows).toEqual([
      '/|dir|755|0|0|0|',
      '/bin|dir|755|0|0|0|',
      '/bin/run|file|755|0|0|10|',
      '/link|symlink|777|0|0|0|bin/run',
    ]);
    await rev.close?.();
  });
});
