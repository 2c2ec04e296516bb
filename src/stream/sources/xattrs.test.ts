import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createGetfattrParser, readTreeXattrs, startTreeXattrs, unescapeGetfattr } from './xattrs.js';

describe('getfattr output', () => {
  it('unescapes octal escapes and leaves other bytes raw', () => {
    const raw = Buffer.concat([Buffer.from('a\\012b\\134c\\075'), Buffer.from([0xff, 0x09])]);
    expect(unescapeGetfattr(raw)).toEqual(
      Buffer.concat([Buffer.from('a\nb\\c='), Buffer.from([0xff, 0x09])]),
    );
  });

  it('parses files and base64 values across chunk boundaries', () => {
    const text = Buffer.concat([
      Buffer.from('# file: .\nuser.root=0scg==\n\n# file: ./a\\012b'),
      Buffer.from([0xff]),
      Buffer.from('\nsecurity.capability=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=\nuser.we\\075ird=0s\n\n'),
    ]);
    const parser = createGetfattrParser();
    for (let i = 0; i < text.length; i += 7) parser.push(text.subarray(i, i + 7));
    const map = parser.end();
    expect(map.get('/')!.get('user.root')!.toString()).toBe('r');
    const key = Buffer.concat([Buffer.from('/a\nb'), Buffer.from([0xff])]).toString('latin1');
    expect(map.get(key)!.get('security.capability')!.toString('hex')).toBe(
      '0100000200200000000000000000000000000000',
    );
    expect(map.get(key)!.get('user.we=ird')).toEqual(Buffer.alloc(0));
  });

  it('says how to install getfattr when it is missing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudlets-xattr-'));
    try {
      await expect(readTreeXattrs(dir, { command: 'getfattr-not-installed' })).rejects.toMatchObject({
        code: 'ESOURCE',
        hint: 'apt-get install attr',
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves pruned top-level trees out and still reads the root, files and the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudlets-xattr-'));
    try {
      mkdirSync(join(dir, '.git/objects'), { recursive: true });
      mkdirSync(join(dir, 'etc/deep'), { recursive: true });
      writeFileSync(join(dir, '.git/objects/x'), '');
      writeFileSync(join(dir, 'etc/deep/f'), '');
      writeFileSync(join(dir, 'top'), '');
      symlinkSync('top', join(dir, 'link'));
      const set = (rel: string, name: string) =>
        spawnSync('setfattr', ['-n', name, '-v', '1', rel], { cwd: dir }).status === 0;
      if (
        ![
          set('.', 'user.r'),
          set('.git/objects/x', 'user.g'),
          set('etc/deep/f', 'user.f'),
          set('top', 'user.t'),
        ].every(Boolean)
      ) {
        console.log('skipped: this file system takes no user.* extended attributes');
        return;
      }
      const prune = (p: Buffer) => p.toString() === '/.git';
      const map = await readTreeXattrs(dir, { prune });
      expect([...map.keys()].sort()).toEqual(['/', '/etc/deep/f', '/top']);
      const all = await readTreeXattrs(dir);
      expect([...all.keys()].sort()).toEqual(['/', '/.git/objects/x', '/etc/deep/f', '/top']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the top-level directories in runs of 1, 2 and the rest, and a path waits only for its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudlets-xattr-'));
    try {
      for (const d of ['a', 'b', 'c', 'd', 'e']) mkdirSync(join(dir, d));
      writeFileSync(join(dir, 'f'), '');
      // A stand-in getfattr: logs its arguments, reports one attribute per argument, and is slow
      // for the last run (the one holding ./d).
      const log = join(dir, 'f');
      const fake = join(dir, '..', `${dir.split('/').pop()}-getfattr`);
      writeFileSync(
        fake,
        `#!/bin/sh\necho "$*" >> ${log}\ncase "$*" in *./d*) sleep 1;; esac\nfor a in "$@"; do case "$a" in .|./*) printf '# file: %s\\nuser.x=0sYQ==\\n\\n' "$a";; esac; done\n`,
        { mode: 0o755 },
      );
      const runs = startTreeXattrs(dir, { command: fake });
      const started = Date.now();
      await runs.ready(Buffer.from('/b/x'));
      expect(Date.now() - started).toBeLessThan(900);
      expect([...runs.map.keys()].sort()).toEqual(['/', '/a', '/b', '/c', '/f']);
      expect(runs.ready(Buffer.from('/a'))).toBeUndefined();
      expect(runs.ready(Buffer.from('/e/y'))).toBeInstanceOf(Promise);
      const all = await runs.all();
      expect([...all.keys()].sort()).toEqual(['/', '/a', '/b', '/c', '/d', '/e', '/f']);
      const calls = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' ').filter((w) => w.startsWith('.')));
      expect(calls.sort()).toEqual([['.', './f'], ['./a'], ['./b', './c'], ['./d', './e']].sort());
      rmSync(fake);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('with deepRuns 1, reads the whole tree in one run, or in two when a top-level name is pruned', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloudlets-xattr-'));
    const fake = join(dir, '..', `${dir.split('/').pop()}-getfattr`);
    try {
      for (const d of ['a', 'b', '.git']) mkdirSync(join(dir, d));
      writeFileSync(join(dir, 'f'), '');
      const log = join(dir, 'f');
      writeFileSync(
        fake,
        `#!/bin/sh\necho "$*" >> ${log}\nfor a in "$@"; do case "$a" in .|./*) printf '# file: %s\\nuser.x=0sYQ==\\n\\n' "$a";; esac; done\n`,
        { mode: 0o755 },
      );
      const calls = () =>
        readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((l) => l.split(' ').filter((w) => w === '-R' || w.startsWith('.')));
      await startTreeXattrs(dir, { command: fake, deepRuns: 1 }).all();
      expect(calls()).toEqual([['-R', '.']]);
      writeFileSync(log, '');
      const isGit = (p: Buffer) => p.toString() === '/.git';
      await startTreeXattrs(dir, { command: fake, deepRuns: 1, prune: isGit }).all();
      expect(calls().sort()).toEqual(
        [
          ['.', './f'],
          ['-R', './a', './b'],
        ].sort(),
      );
    } finally {
      rmSync(fake, { force: true });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
