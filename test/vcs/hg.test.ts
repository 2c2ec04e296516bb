// Versioning with real Mercurial: the same round trip as git, push/pull through a central repository and
// through `hg serve` on loopback, and a clear refusal of names hg cannot store.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cloneImage, commitImage, imageLog, imageStatus, pullImage, pushImage } from '../../src/vcs/repo.js';
import { cli, isRoot, tempDir } from '../helpers.js';
import { expectCommitCloneRoundTrip, freePort, makeEveryKindTree, ownSnapshot, waitForPort } from './tree.js';

const ENV = { HGUSER: 'Test <t@example.org>', HGRCPATH: '/dev/null' };
Object.assign(process.env, ENV);

describe('hg: every kind of metadata round-trips', () => {
  const tmp = tempDir('cloudlets-vcs-hg-');
  afterAll(() => {
    spawnSync('chmod', ['-R', 'u+rwx', tmp.path]);
    tmp.remove();
  });

  it('commit --vcs hg (CLI) then clone (CLI) gives the same tree; hg verify is clean', async () => {
    const img = join(tmp.path, 'img');
    const copy = join(tmp.path, 'copy');
    mkdirSync(img);
    await makeEveryKindTree(img, { root: isRoot, newlineNames: false });
    await expectCommitCloneRoundTrip(img, copy, { vcs: 'hg', env: ENV });
    // The nested .hg of the image is content, under its escaped name in the repository.
    expect(readFileSync(join(copy, 'srv/proj/.hg/requires'), 'utf8')).toBe('store\n');
    expect(execFileSync('hg', ['-R', copy, 'files']).toString()).toContain(
      'srv/proj/.hg.cloudlets-escaped/requires',
    );
    expect(existsSync(join(copy, 'tmp/junk'))).toBe(false);
    expect(spawnSync('hg', ['-R', copy, 'verify', '-q']).status).toBe(0);
    expect(spawnSync('hg', ['-R', img, 'verify', '-q']).status).toBe(0);
    expect((await imageStatus(img)).clean).toBe(true);
    expect((await imageLog(copy)).map((e) => e.subject)).toEqual(['every kind']);
  });

  it('refuses names with a newline, saying which and what to do', () => {
    const img = join(tmp.path, 'newline');
    mkdirSync(img);
    writeFileSync(join(img, 'a\nb'), 'x');
    const r = cli(['commit', img, '-m', 'x', '--vcs', 'hg'], { env: ENV });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'Mercurial cannot store file names with a newline or carriage return: /a\\x0ab',
    );
    expect(r.stderr).toContain('hint: rename them, mark them volatile');
  });
});

describe('hg: push and pull between two copies', () => {
  const tmp = tempDir('cloudlets-vcs-hg-remote-');
  const a = join(tmp.path, 'a');
  const central = join(tmp.path, 'central');
  const b = join(tmp.path, 'b');
  let server: ChildProcess | undefined;
  afterAll(() => {
    server?.kill();
    tmp.remove();
  });

  it('through a central repository, then through hg serve on 127.0.0.1', async () => {
    mkdirSync(a);
    writeFileSync(join(a, 'motd'), 'hello\n');
    mkdirSync(join(a, 'empty'));
    await commitImage(a, { message: 'one', vcs: 'hg' });
    execFileSync('hg', ['clone', '-q', '-U', a, central]);
    await cloneImage(central, b);
    expect(await ownSnapshot(b)).toBe(await ownSnapshot(a));

    chmodSync(join(a, 'motd'), 0o600);
    await commitImage(a, { message: 'two' });
    await pushImage(a, central);
    chmodSync(join(b, 'empty'), 0o700);
    writeFileSync(join(b, 'from-b'), 'b\n');
    await commitImage(b, { message: 'b side' });
    const pulled = await pullImage(b, central);
    expect(pulled.merged).toBe(true);
    expect(statSync(join(b, 'motd')).mode & 0o777).toBe(0o600);
    expect(statSync(join(b, 'empty')).mode & 0o777).toBe(0o700);

    const port = await freePort();
    server = spawn(
      'hg',
      [
        'serve',
        '-R',
        central,
        '-a',
        '127.0.0.1',
        '-p',
        String(port),
        '--config',
        'web.push_ssl=false',
        '--config',
        'web.allow-push=*',
      ],
      { stdio: 'ignore', env: { ...process.env, ...ENV } },
    );
    await waitForPort(port, server);
    const url = `http://127.0.0.1:${port}/`;
    expect(cli(['push', b, url], { env: ENV }).code).toBe(0);
    const c = join(tmp.path, 'c');
    const r = cli(['clone', url, c, '--vcs', 'hg'], { env: ENV });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await ownSnapshot(c)).toBe(await ownSnapshot(b));
    const p = cli(['pull', a, url], { env: ENV });
    expect(p.stderr).toBe('');
    expect(statSync(join(a, 'empty')).mode & 0o777).toBe(0o700);
    expect(spawnSync('hg', ['-R', central, 'verify', '-q']).status).toBe(0);
  });
});
