// Fixtures for the versioning tests: a tree holding every kind of file and metadata, and snapshots of a
// tree taken two independent ways (our own capture, and stat/getfattr/readlink from the system).

import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { classify } from '../../src/stream/filters/select.js';
import { openDirectorySource } from '../../src/stream/sources/dir.js';
import { captureSource, isRepositoryPath } from '../../src/vcs/capture.js';
import { formatMetadata } from '../../src/vcs/metadata.js';
import { cli } from '../helpers.js';

export const MANIFEST = { volatile: ['/tmp/.+', '/var/log/(?!apt).+'] };
export const CAPABILITY = '0sAQAAAgAgAAAAAAAAAAAAAAAAAAA='; // cap_net_raw+ep

const b = (s: string) => Buffer.from(s, 'latin1');

function setfattr(path: string | Buffer, name: string, value: string): void {
  execFileSync('setfattr', ['-h', '-n', name, '-v', value, '--', path.toString()]);
}

export interface TreeOptions {
  /** Owners, devices, setuid, security.capability: needs root. */
  root: boolean;
  /** Names Mercurial cannot store (newline, carriage return). */
  newlineNames: boolean;
}

/** Writes the every-kind tree into `dir` (which must exist and be empty). */
export async function makeEveryKindTree(dir: string, opts: TreeOptions): Promise<void> {
  const p = (rel: string) => join(dir, rel);
  const mk = (rel: string, mode = 0o755) => {
    mkdirSync(p(rel), { recursive: true });
    chmodSync(p(rel), mode);
  };
  mk('.cloudlet');
  writeFileSync(p('.cloudlet/manifest'), JSON.stringify(MANIFEST));
  mk('etc');
  writeFileSync(p('etc/hostname'), 'host1\n');
  setfattr(p('etc/hostname'), 'user.origin', 'fixture');
  writeFileSync(p('etc/secret'), 'nobody reads this\n');
  chmodSync(p('etc/secret'), 0o000);
  mk('etc/.git');
  writeFileSync(p('etc/.git/HEAD'), 'ref: refs/heads/master\n');
  mk('etc/.git/refs/heads');
  writeFileSync(p('etc/.git/refs/heads/master'), '0123456789012345678901234567890123456789\n');
  mk('srv/proj/.hg');
  writeFileSync(p('srv/proj/.hg/requires'), 'store\n');
  mk('usr/bin');
  writeFileSync(p('usr/bin/tool'), '#!/bin/sh\necho tool\n');
  chmodSync(p('usr/bin/tool'), 0o755);
  linkSync(p('usr/bin/tool'), p('usr/bin/tool-alias'));
  symlinkSync('../../etc/hostname', p('usr/bin/hostname-link'));
  symlinkSync('/nowhere/at/all', p('broken'));
  mk('empty', 0o700);
  mk('ro');
  writeFileSync(p('ro/file'), 'read only dir\n');
  chmodSync(p('ro'), 0o555);
  mk('tmp', 0o1777);
  writeFileSync(p('tmp/junk'), 'volatile\n');
  mk('var/log/apt');
  writeFileSync(p('var/log/syslog'), 'volatile log\n');
  writeFileSync(p('var/log/apt/history.log'), 'kept\n');
  mk('odd');
  writeFileSync(Buffer.concat([b(`${dir}/odd/x`), Buffer.from([0xff, 0xfe])]), 'not utf-8\n');
  writeFileSync(p('odd/with space'), 'space\n');
  writeFileSync(p('odd/back\\slash'), 'backslash\n');
  writeFileSync(p('odd/ünïcode'), 'utf-8\n');
  if (opts.newlineNames) writeFileSync(p('odd/new\nline'), 'newline\n');
  mk('run');
  execFileSync('mkfifo', ['-m', '0640', p('run/fifo')]);
  await makeSocket(p('run/sock'));
  if (opts.root) {
    mk('home/app', 0o750);
    writeFileSync(p('home/app/.profile'), 'export A=1\n');
    chownSync(p('home/app/.profile'), 1000, 1000);
    chownSync(p('home/app'), 1000, 1000);
    chownSync(p('empty'), 1234, 5678);
    writeFileSync(p('usr/bin/ping'), 'ELF pretend\n');
    chmodSync(p('usr/bin/ping'), 0o4755);
    setfattr(p('usr/bin/ping'), 'security.capability', CAPABILITY);
    writeFileSync(p('usr/bin/wall'), 'ELF pretend\n');
    chownSync(p('usr/bin/wall'), 0, 5);
    chmodSync(p('usr/bin/wall'), 0o2755);
    setfattr(p('etc/hostname'), 'trusted.cloudlets', 'root only');
    chmodSync(p('tmp'), 0o1777);
    mk('dev');
    execFileSync('mknod', ['-m', '0666', p('dev/null'), 'c', '1', '3']);
    execFileSync('mknod', ['-m', '0660', p('dev/sda'), 'b', '8', '0']);
    chownSync(p('dev/sda'), 0, 6);
    chownSync(p('run/fifo'), 33, 33);
  }
}

function makeSocket(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(`${path}.tmp`, () => {
      linkSync(`${path}.tmp`, path);
      server.close(() => resolve());
    });
  });
}

/** Our own capture of a tree (volatile left out), as the metadata file's text. */
export async function ownSnapshot(dir: string): Promise<string> {
  const kind = classify({ templates: [], persistent: [], volatile: MANIFEST.volatile });
  const source = openDirectorySource(dir, { prune: isRepositoryPath });
  const cap = await captureSource(source, { isVolatile: (p) => kind(p) === 'volatile' });
  const content = cap.content.map((path) => {
    const abs = Buffer.concat([b(dir), path]);
    const st = lstatSync(abs);
    const bytes = st.isSymbolicLink() ? readlinkSync(abs, { encoding: 'buffer' }) : readFileSync(abs);
    return `${path.toString('latin1')} ${createHash('sha256').update(bytes).digest('hex')}`;
  });
  return `${formatMetadata(cap.records.filter((r) => r.path.toString() !== '/.cloudlet/metadata'))}${content.join('\n')}\n`;
}

/** The system's view: `stat` of every non-volatile path, and `getfattr` of the whole tree. */
export function systemSnapshot(dir: string): { stat: string; xattrs: string } {
  // find hands the names to stat as raw bytes (non-UTF-8 names survive); lines sorted for comparison.
  const prune = [
    '(',
    '-path',
    './.git',
    '-o',
    '-path',
    './.hg',
    '-o',
    '-path',
    './tmp/*',
    '-o',
    '-path',
    './var/log/syslog',
    ')',
  ];
  const res = spawnSync(
    'find',
    [
      '.',
      ...prune,
      '-prune',
      '-o',
      '!',
      '-path',
      './.cloudlet/metadata',
      '-exec',
      'stat',
      '-c',
      '%n|%a|%u|%g|%t|%T|%F|%h|%s',
      '{}',
      '+',
    ],
    { cwd: dir },
  );
  const stat = res.stdout.toString('latin1').split('\n').sort().join('\n');
  const xattrs = spawnSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '.'], {
    cwd: dir,
  }).stdout.toString('latin1');
  return { stat, xattrs };
}

/** Same inode? For checking that hardlinks came back as links. */
export function sameFile(a: string, c: string): boolean {
  const x = lstatSync(a);
  const y = lstatSync(c);
  return x.ino === y.ino && x.dev === y.dev;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on the port. */
export async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1', () => {
        c.destroy();
        resolve(true);
      });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port}`);
}

/**
 * Commits `img` with the CLI (creating a `vcs` repository), clones it into `copy` with --trust, and
 * checks the two trees are the same by our own capture and by the system's stat and getfattr. Returns
 * the copy's system snapshot for further checks.
 */
export async function expectCommitCloneRoundTrip(
  img: string,
  copy: string,
  opts: { vcs: 'git' | 'hg'; env: NodeJS.ProcessEnv },
): Promise<{ stat: string; xattrs: string }> {
  const c = cli(['commit', img, '-m', 'every kind', ...(opts.vcs === 'hg' ? ['--vcs', 'hg'] : [])], {
    env: opts.env,
  });
  expect(c.stderr).toBe('');
  expect(c.code).toBe(0);
  expect(c.stdout).toMatch(new RegExp(`created a ${opts.vcs} repository`));
  const cl = cli(['clone', img, copy, '--trust'], { env: opts.env });
  expect(cl.stderr).toBe('');
  expect(cl.code).toBe(0);
  expect(await ownSnapshot(copy)).toBe(await ownSnapshot(img));
  const a = systemSnapshot(img);
  const b = systemSnapshot(copy);
  expect(b.stat).toBe(a.stat);
  expect(b.xattrs).toBe(a.xattrs);
  expect(sameFile(join(copy, 'usr/bin/tool'), join(copy, 'usr/bin/tool-alias'))).toBe(true);
  return b;
}
