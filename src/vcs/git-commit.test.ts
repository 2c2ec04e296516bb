// The commit is written by fast-import, not from the index: its tree must still be exactly the index's,
// whatever bytes the names hold, and the packs it leaves behind must not pile up.
import { chmodSync, mkdirSync, readdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gitIn, tempDirsPerTest } from '../../test/helpers.js';
import { fastImportPath } from './git-commit.js';
import { commitImage } from './repo.js';

const git = gitIn;
const tempImage = tempDirsPerTest('cloudlets-fastimport-');

describe('fastImportPath', () => {
  it('leaves ordinary names alone and C-quotes the rest', () => {
    expect(fastImportPath(Buffer.from('usr/bin/with space')).toString()).toBe('usr/bin/with space');
    expect(fastImportPath(Buffer.from([0x61, 0xff])).equals(Buffer.from([0x61, 0xff]))).toBe(true);
    expect(fastImportPath(Buffer.from('a\nb')).toString()).toBe('"a\\012b"');
    expect(fastImportPath(Buffer.from('"q\\x')).toString()).toBe('"\\"q\\\\x"');
    expect(fastImportPath(Buffer.from('t\x7f')).toString()).toBe('"t\\177"');
  });
});

describe('commit through fast-import', () => {
  it('records the tree the index holds, odd names, links, modes and removals included', async () => {
    const dir = tempImage();
    mkdirSync(join(dir, 'odd'));
    const odd = ['new\nline', '"quoted', 'back\\slash', '\x01ctl', 'with space', 'tab\there'];
    for (const n of odd) writeFileSync(join(dir, 'odd', n), n);
    writeFileSync(join(dir, 'odd', Buffer.from([0x78, 0xff]).toString('latin1')), 'latin1');
    writeFileSync(Buffer.concat([Buffer.from(`${dir}/odd/`), Buffer.from([0x79, 0xfe])]), 'raw');
    writeFileSync(join(dir, 'tool'), '#!/bin/sh\n');
    chmodSync(join(dir, 'tool'), 0o755);
    symlinkSync('odd/"quoted', join(dir, 'link'));
    const one = await commitImage(dir, { message: 'one' });
    expect(one.committed).toBe(true);
    expect(git(dir, 'write-tree')).toBe(git(dir, 'rev-parse', 'HEAD^{tree}'));

    unlinkSync(join(dir, 'odd', 'new\nline'));
    writeFileSync(join(dir, 'odd', '"quoted'), 'changed');
    writeFileSync(join(dir, 'odd', '"new'), 'new');
    const two = await commitImage(dir, { message: 'two\n\nbody' });
    expect(two.changes).toEqual({
      added: ['/odd/"new'],
      modified: ['/odd/"quoted'],
      deleted: ['/odd/new\\x0aline'],
    });
    expect(git(dir, 'write-tree')).toBe(git(dir, 'rev-parse', 'HEAD^{tree}'));
    expect(git(dir, 'rev-parse', 'HEAD~1')).toBe(one.rev);
    expect(git(dir, 'log', '-1', '--format=%B')).toBe('two\n\nbody');
    expect(git(dir, 'reflog', '-1', '--format=%gs')).toBe('commit: two');
    expect(git(dir, 'for-each-ref', 'refs/cloudlets')).toBe('');
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });

  it('rolls small packs up instead of letting every commit add some', async () => {
    const dir = tempImage();
    for (let i = 0; i < 40; i++) writeFileSync(join(dir, `f${i}`), 'start\n');
    await commitImage(dir, { message: 'first' });
    const packs = () => readdirSync(join(dir, '.git/objects/pack')).filter((n) => n.endsWith('.pack')).length;
    let most = 0;
    for (let c = 0; c < 20; c++) {
      for (let i = 0; i < 40; i++) writeFileSync(join(dir, `f${i}`), `commit ${c}\n`);
      await commitImage(dir, { message: `c${c}` });
      most = Math.max(most, packs());
    }
    expect(most).toBeLessThanOrEqual(16);
    git(dir, 'fsck', '--no-progress');
  });
});
