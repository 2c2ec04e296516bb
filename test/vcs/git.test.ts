// Versioning with real git: every kind of metadata survives commit → clone, push and pull through a bare
// repository and through `git daemon` on loopback, checkouts keep volatile files, strangers' metadata is
// refused when it points anywhere unsafe.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMetadata } from '../../src/vcs/metadata.js';
import {
  checkoutImage,
  cloneImage,
  commitImage,
  imageDiff,
  imageLog,
  imageStatus,
  pullImage,
  pushImage,
} from '../../src/vcs/repo.js';
import { restoreMetadata } from '../../src/vcs/restore.js';
import { cli, isRoot, tempDir } from '../helpers.js';
import {
  CAPABILITY,
  expectCommitCloneRoundTrip,
  freePort,
  makeEveryKindTree,
  ownSnapshot,
  waitForPort,
} from './tree.js';

const ENV = {
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 't@example.org',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 't@example.org',
};
Object.assign(process.env, ENV, { GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' });

const gitIn = (dir: string, ...args: string[]) =>
  execFileSync('git', ['-c', `safe.directory=*`, '-C', dir, ...args], {
    env: { ...process.env, ...ENV },
  }).toString();

const rootReason = 'needs root: owners, device nodes, setuid and security.capability';
if (!isRoot) console.log(`skipping the every-kind round trips: ${rootReason}`);

describe('git: every kind of metadata round-trips', () => {
  const tmp = tempDir('cloudlets-vcs-git-');
  const img = join(tmp.path, 'img');
  const copy = join(tmp.path, 'copy');
  afterAll(() => {
    spawnSync('chmod', ['-R', 'u+rwx', tmp.path]);
    tmp.remove();
  });

  beforeAll(async () => {
    if (!isRoot) return;
    mkdirSync(img);
    await makeEveryKindTree(img, { root: true, newlineNames: true });
  });

  it.skipIf(!isRoot)('commit (CLI) then clone --trust (CLI) gives the same tree bit for bit', async () => {
    const b = await expectCommitCloneRoundTrip(img, copy, { vcs: 'git', env: ENV });
    expect(b.xattrs).toContain('security.capability=0s');
    expect(b.stat).toContain('./usr/bin/ping|4755|0|0|0|0|regular file|1|');
    expect(b.stat).toContain('./dev/sda|660|0|6|8|0|block special file|1|0');
    expect(b.stat).toContain('./empty|700|1234|5678|');
    expect(readFileSync(join(copy, 'etc/.git/HEAD'), 'utf8')).toBe('ref: refs/heads/master\n');
    expect(lstatSync(join(copy, 'run/sock')).isSocket()).toBe(true);
    // Volatile files were not committed, so not cloned.
    expect(existsSync(join(copy, 'tmp/junk'))).toBe(false);
    expect(existsSync(join(copy, 'var/log/apt/history.log'))).toBe(true);

    const fsck = spawnSync('git', ['-C', copy, 'fsck', '--strict', '--no-dangling']);
    expect(fsck.status, fsck.stderr.toString()).toBe(0);
    expect(spawnSync('git', ['-C', img, 'fsck', '--strict', '--no-dangling']).status).toBe(0);
    // The metadata file is the tracked, line-oriented record.
    const meta = readFileSync(join(copy, '.cloudlet/metadata'), 'utf8');
    expect(meta).toContain(
      '/usr/bin/ping file 0:0 4755 xattr.security.capability=AQAAAgAgAAAAAAAAAAAAAAAAAAA=',
    );
    expect(meta).toContain('/usr/bin/tool-alias hardlink 0:0 0755 link=/usr/bin/tool');
    expect(meta).toContain('/odd/new\\x0aline file 0:0 0644');
    expect(meta).toContain('/odd/x\\xff\\xfe file');
    expect(meta).toContain('/dev/null char 0:0 0666 dev=1,3');
    expect(gitIn(copy, 'ls-files')).toContain('etc/.git.cloudlets-escaped/HEAD');
  });

  it.skipIf(!isRoot)(
    'status shows volatile as ignored, new files as added, metadata changes readably',
    async () => {
      const st0 = await imageStatus(img);
      expect(st0.clean).toBe(true);
      expect(st0.ignored).toEqual(expect.arrayContaining(['/tmp/junk', '/var/log/syslog']));
      writeFileSync(join(img, 'etc/new.conf'), 'x\n');
      chmodSync(join(img, 'usr/bin/tool'), 0o4755);
      execFileSync('chown', ['2000:2000', join(img, 'home/app/.profile')]);
      execFileSync('setfattr', ['-n', 'security.capability', '-v', CAPABILITY, join(img, 'usr/bin/wall')]);
      mkdirSync(join(img, 'newdir'));
      writeFileSync(join(img, 'tmp/more-junk'), 'y\n');
      const st = await imageStatus(img);
      expect(st.changes.added).toEqual(['/etc/new.conf']);
      const lines = st.metadata.map((m) => m.text);
      expect(lines).toContain('mode 0755 -> 4755 /usr/bin/tool');
      expect(lines).toContain('xattr security.capability added /usr/bin/wall');
      expect(lines).toContain('owner 1000:1000 -> 2000:2000 /home/app/.profile');
      expect(lines).toContain('added dir 0755 0:0 /newdir');
      expect(st.ignored).toContain('/tmp/more-junk');
      const d = cli(['diff', img], { env: ENV });
      expect(d.code).toBe(0);
      expect(d.stdout).toContain('+++ b/etc/new.conf');
      expect(d.stdout).toContain('mode 0755 -> 4755 /usr/bin/tool');
      const j = JSON.parse(cli(['status', img, '--json']).stdout);
      expect(j.changes.added).toEqual(['/etc/new.conf']);
    },
  );

  it.skipIf(!isRoot)('checkout of an older revision restores metadata and keeps volatile files', async () => {
    const first = (await imageLog(img))[0]!.rev;
    const second = await commitImage(img, { message: 'second' });
    expect(second.committed).toBe(true);
    expect((await imageDiff(img, { from: first, to: second.rev })).metadata.map((m) => m.text)).toContain(
      'owner 1000:1000 -> 2000:2000 /home/app/.profile',
    );
    const res = await checkoutImage(img, first, { trust: true });
    expect(res.restore.skipped).toEqual([]);
    expect(statSync(join(img, 'usr/bin/tool')).mode & 0o7777).toBe(0o755);
    expect(existsSync(join(img, 'etc/new.conf'))).toBe(false);
    expect(existsSync(join(img, 'newdir'))).toBe(false);
    expect(readFileSync(join(img, 'tmp/more-junk'), 'utf8')).toBe('y\n');
    expect(readFileSync(join(img, 'var/log/syslog'), 'utf8')).toBe('volatile log\n');
    expect(
      execFileSync('getfattr', [
        '-n',
        'security.capability',
        '-e',
        'base64',
        join(img, 'usr/bin/ping'),
      ]).toString(),
    ).toContain('AQAAAgAgAAAAAAAAAAAAAAAAAAA=');
    expect((await imageStatus(img)).clean).toBe(true);
    await checkoutImage(img, 'master', { trust: true });
    expect(statSync(join(img, 'usr/bin/tool')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(img, 'home/app/.profile')).uid).toBe(2000);
    expect(readFileSync(join(img, 'etc/.git/HEAD'), 'utf8')).toBe('ref: refs/heads/master\n');
  });

  it.skipIf(!isRoot)(
    'without --trust: devices, setuid/setgid and capabilities are skipped and listed',
    () => {
      const out = join(tmp.path, 'untrusted');
      const r = cli(['clone', img, out], { env: ENV });
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(
        /warning: skipped device: device nodes need --trust \(\/dev\/null, \/dev\/sda\)/,
      );
      expect(r.stderr).toMatch(/warning: skipped setuid: .*\/usr\/bin\/tool/);
      expect(r.stderr).toMatch(/security\.capability needs --trust/);
      expect(existsSync(join(out, 'dev/null'))).toBe(false);
      expect(statSync(join(out, 'usr/bin/wall')).mode & 0o7777).toBe(0o755);
    },
  );
});

describe('git: push and pull between two copies', () => {
  const tmp = tempDir('cloudlets-vcs-remote-');
  const a = join(tmp.path, 'a');
  const bare = join(tmp.path, 'central.git');
  const b = join(tmp.path, 'b');
  let daemon: ChildProcess | undefined;
  afterAll(() => {
    daemon?.kill();
    tmp.remove();
  });

  it('through a bare repository', async () => {
    mkdirSync(join(a, '.cloudlet'), { recursive: true });
    writeFileSync(join(a, '.cloudlet/manifest'), JSON.stringify({ volatile: ['/tmp/.+'] }));
    writeFileSync(join(a, 'motd'), 'hello\n');
    mkdirSync(join(a, 'tmp'));
    mkdirSync(join(a, 'empty'));
    await commitImage(a, { message: 'one' });
    execFileSync('git', ['init', '-q', '--bare', bare]);
    await pushImage(a, bare);
    await cloneImage(bare, b);
    expect(await ownSnapshot(b)).toBe(await ownSnapshot(a));
    writeFileSync(join(b, 'tmp/local'), 'volatile in b\n');

    // a changes a mode and adds a file; b changes another file: pull merges both.
    chmodSync(join(a, 'motd'), 0o600);
    writeFileSync(join(a, 'added'), 'from a\n');
    await commitImage(a, { message: 'two' });
    await pushImage(a, bare);
    writeFileSync(join(b, 'local-change'), 'from b\n');
    chmodSync(join(b, 'empty'), 0o700);
    await commitImage(b, { message: 'b side' });
    const pulled = await pullImage(b, bare);
    expect(pulled.merged).toBe(true);
    expect(statSync(join(b, 'motd')).mode & 0o777).toBe(0o600);
    expect(statSync(join(b, 'empty')).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(b, 'added'), 'utf8')).toBe('from a\n');
    expect(readFileSync(join(b, 'tmp/local'), 'utf8')).toBe('volatile in b\n');
    const meta = parseMetadata(readFileSync(join(b, '.cloudlet/metadata'), 'utf8'));
    expect(meta.map((r) => r.path.toString())).toEqual(
      expect.arrayContaining(['/added', '/local-change', '/empty']),
    );
    await pushImage(b, bare);
    await pullImage(a, bare);
    expect(statSync(join(a, 'empty')).mode & 0o777).toBe(0o700);
    expect(spawnSync('git', ['-C', bare, 'fsck', '--strict']).status).toBe(0);
  });

  it('through git daemon on 127.0.0.1', async () => {
    const port = await freePort();
    daemon = spawn(
      'git',
      [
        'daemon',
        '--reuseaddr',
        '--export-all',
        '--enable=receive-pack',
        `--base-path=${tmp.path}`,
        '--listen=127.0.0.1',
        `--port=${port}`,
        tmp.path,
      ],
      { stdio: 'ignore' },
    );
    await waitForPort(port, daemon);
    const url = `git://127.0.0.1:${port}/central.git`;
    const c = join(tmp.path, 'c');
    const r = cli(['clone', url, c], { env: ENV });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await ownSnapshot(c)).toBe(await ownSnapshot(a));
    writeFileSync(join(c, 'via-daemon'), 'pushed over git://\n');
    chmodSync(join(c, 'via-daemon'), 0o640);
    expect(cli(['commit', c, '-m', 'over the daemon'], { env: ENV }).code).toBe(0);
    const p = cli(['push', c, url], { env: ENV });
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    const pl = cli(['pull', a, url], { env: ENV });
    expect(pl.code).toBe(0);
    expect(statSync(join(a, 'via-daemon')).mode & 0o777).toBe(0o640);
    daemon.kill();
  });
});

describe('a malicious metadata file is refused', () => {
  const tmp = tempDir('cloudlets-vcs-evil-');
  afterAll(() => tmp.remove());

  /** A repository whose metadata file says `lines`, committed with plain git (as a stranger would). */
  function evilRepo(name: string, lines: string[], setup?: (dir: string) => void): string {
    const dir = join(tmp.path, name);
    mkdirSync(join(dir, '.cloudlet'), { recursive: true });
    writeFileSync(join(dir, 'file'), 'x\n');
    setup?.(dir);
    writeFileSync(
      join(dir, '.cloudlet/metadata'),
      `# cloudlets metadata 1\n/ dir 0:0 0755\n${lines.join('\n')}\n`,
    );
    gitIn(dir, 'init', '-q');
    gitIn(dir, 'add', '-A');
    gitIn(dir, 'commit', '-q', '-m', 'evil');
    return dir;
  }

  const outside = join(tmp.path, 'outside');
  beforeAll(() => {
    mkdirSync(outside);
    writeFileSync(join(outside, 'target'), 'host file\n');
    chmodSync(join(outside, 'target'), 0o644);
  });

  it.each([
    ['dotdot', ['/../outside/target file 0:0 4777'], /has a "\.\." component/],
    ['relative', ['outside/target file 0:0 0777'], /not absolute within the image/],
    ['nul', ['/fi\\x00le file 0:0 0777'], /NUL/],
    ['repo', ['/.git/config file 0:0 0777'], /into the repository itself/],
    ['hardlink-out', ['/l hardlink 0:0 0644 link=/../outside/target'], /\.\./],
  ])('%s', async (name, lines, message) => {
    const src = evilRepo(name, lines);
    await expect(cloneImage(src, join(tmp.path, `${name}-clone`))).rejects.toThrow(message);
    expect(statSync(join(outside, 'target')).mode & 0o7777).toBe(0o644);
  });

  it('a symlinked parent directory', async () => {
    const src = evilRepo('symlink', ['/evil symlink 0:0 0777', '/evil/target file 0:0 4777'], (dir) =>
      symlinkSync(outside, join(dir, 'evil')),
    );
    await expect(cloneImage(src, join(tmp.path, 'symlink-clone'))).rejects.toThrow(
      /parent \/evil is a symlink/,
    );
    expect(statSync(join(outside, 'target')).mode & 0o7777).toBe(0o644);
  });

  it('a nested repository name under a symlinked parent is not renamed outside', async () => {
    mkdirSync(join(outside, '.git.cloudlets-escaped'));
    const src = evilRepo('nested', ['/evil symlink 0:0 0777', '/evil/.git dir 0:0 0755'], (dir) =>
      symlinkSync(outside, join(dir, 'evil')),
    );
    await expect(cloneImage(src, join(tmp.path, 'nested-clone'))).rejects.toThrow(
      /parent \/evil is a symlink/,
    );
    expect(existsSync(join(outside, '.git.cloudlets-escaped'))).toBe(true);
    expect(existsSync(join(outside, '.git'))).toBe(false);
  });

  it('non-root restore skips owners, devices and setuid with a list', async () => {
    const dir = join(tmp.path, 'plain');
    mkdirSync(dir);
    writeFileSync(join(dir, 'suid'), 'x');
    const records = parseMetadata(
      ['/ dir 0:0 0755', '/suid file 0:0 4755', '/dev-null char 0:0 0666 dev=1,3'].join('\n'),
    );
    const res = await restoreMetadata(dir, records, { isRoot: false, trust: true });
    expect(res.skipped.map((s) => `${s.what} ${s.path}`)).toEqual(
      expect.arrayContaining(['device /dev-null', 'setuid /suid']),
    );
    expect(statSync(join(dir, 'suid')).mode & 0o7777).toBe(0o755);
    expect(existsSync(join(dir, 'dev-null'))).toBe(false);
  });
});

describe('checkout touches only what the switch changes', () => {
  const tmp = tempDir('cloudlets-vcs-switch-');
  afterAll(() => tmp.remove());

  it('an uncommitted mode change on an unrelated file survives; changed files get their metadata', async () => {
    const dir = join(tmp.path, 'img');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a'), 'one\n');
    writeFileSync(join(dir, 'b'), 'b\n');
    chmodSync(join(dir, 'a'), 0o600);
    const one = await commitImage(dir, { message: 'one' });
    writeFileSync(join(dir, 'a'), 'two\n');
    chmodSync(join(dir, 'a'), 0o640);
    await commitImage(dir, { message: 'two' });
    chmodSync(join(dir, 'b'), 0o604); // not committed
    await checkoutImage(dir, one.rev!);
    expect(readFileSync(join(dir, 'a'), 'utf8')).toBe('one\n');
    expect(statSync(join(dir, 'a')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'b')).mode & 0o777).toBe(0o604);
    expect((await imageStatus(dir)).metadata.map((m) => m.text)).toEqual(['mode 0644 -> 0604 /b']);
  });
});
