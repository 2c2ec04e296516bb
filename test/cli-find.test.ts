import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, EXAMPLE, tempDir } from './helpers.js';

const NL = Buffer.from('/etc/two\nlines');
const LATIN1 = Buffer.concat([Buffer.from('/srv/caf'), Buffer.from([0xe9])]);

let img: { path: string; remove: () => void };

function put(path: Buffer | string, content = '') {
  const host = Buffer.concat([Buffer.from(img.path), Buffer.isBuffer(path) ? path : Buffer.from(path)]);
  writeFileSync(host, content);
}

beforeAll(() => {
  img = tempDir('cloudlets-find-');
  for (const d of ['.cloudlet', 'etc', 'tmp/cache', 'var/log/apt', 'srv'])
    mkdirSync(join(img.path, d), { recursive: true });
  put(
    '/.cloudlet/manifest',
    JSON.stringify({
      templates: ['/etc/hostname'],
      persistent: ['/var/log'],
      volatile: ['/tmp/.+', '/var/log/(?!apt).+'],
    }),
  );
  put('/etc/hostname', '<%= args.hostname %>');
  put(NL);
  put(LATIN1);
  put('/tmp/cache/x');
  put('/var/log/syslog');
  put('/var/log/apt/history.log');
  // A repository kept at the image root is not part of the image.
  mkdirSync(join(img.path, '.git/objects'), { recursive: true });
  put('/.git/objects/x');
});
afterAll(() => img.remove());

const split0 = (out: Buffer) => {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < out.length; i++) {
    if (out[i] === 0) {
      parts.push(out.subarray(start, i).toString('hex'));
      start = i + 1;
    }
  }
  expect(start).toBe(out.length);
  return parts;
};
const hex = (p: string | Buffer) => (Buffer.isBuffer(p) ? p : Buffer.from(p)).toString('hex');

describe('cloudlets find', () => {
  it('lists everything but volatile, byte-exact and NUL-terminated with -0; not the root, not /.git', () => {
    const res = cli(['find', img.path, '-0']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const expected = [
      '/.cloudlet',
      '/.cloudlet/manifest',
      '/etc',
      '/etc/hostname',
      NL,
      '/srv',
      LATIN1,
      '/tmp',
      '/var',
      '/var/log',
      '/var/log/apt',
      '/var/log/apt/history.log',
    ].map(hex);
    expect(split0(res.stdoutBytes)).toEqual(expected);
  });

  it('--only selects kinds; newline-terminated by default', () => {
    const res = cli(['find', img.path, '--only', 'volatile', 'templates']);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('/etc/hostname\n/tmp/cache\n/tmp/cache/x\n/var/log/syslog\n');
  });

  it('--json gives path, kind and type, with the exact bytes in base64 for a non-UTF-8 name', () => {
    const res = cli(['find', img.path, '--json', '--only', 'other', 'persistent']);
    expect(res.code).toBe(0);
    const items = JSON.parse(res.stdout) as Array<Record<string, string>>;
    expect(items.find((i) => i.path === '/var/log')).toEqual({
      path: '/var/log',
      kind: 'persistent',
      type: 'dir',
    });
    expect(items.find((i) => i.path === '/etc/two\nlines')).toEqual({
      path: '/etc/two\nlines',
      kind: 'other',
      type: 'file',
    });
    const latin = items.find((i) => i.pathBase64);
    expect(Buffer.from(latin!.pathBase64!, 'base64')).toEqual(LATIN1);
    expect(latin!.path).toBe('/srv/caf\ufffd');
  });

  it('lists a gzipped tar archive of the image exactly as the directory', () => {
    const archive = join(img.path, '..', `${img.path.split('/').pop()}.tar.gz`);
    try {
      execFileSync('tar', ['--format=pax', '--exclude=./.git', '-czf', archive, '-C', img.path, '.']);
      const fromDir = cli(['find', img.path, '-0', '--only', 'templates', 'volatile', 'persistent', 'other']);
      const fromTar = cli(['find', archive, '-0', '--only', 'templates', 'volatile', 'persistent', 'other']);
      expect(fromTar.stderr).toBe('');
      expect(fromTar.stdoutBytes.toString('hex')).toBe(fromDir.stdoutBytes.toString('hex'));
    } finally {
      rmSync(archive, { force: true });
    }
  });

  it('lists the example image', () => {
    const res = cli(['find', EXAMPLE]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('/etc/hostname\n');
  });

  it('refuses a volatile pattern that would backtrack catastrophically, quickly, naming the manifest and index', () => {
    const manifest = join(img.path, 'bad-manifest.json');
    writeFileSync(manifest, JSON.stringify({ volatile: ['/tmp/.+', '/(a+)+$'] }));
    const t0 = Date.now();
    const res = cli(['--manifest', manifest, 'find', img.path]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/\/volatile\/1: pattern may backtrack catastrophically/);
    expect(res.stderr).toContain('bad-manifest.json');
  });

  it('names a missing image', () => {
    const res = cli(['find', join(img.path, 'nope')]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/nope: no such image/);
  });
});
