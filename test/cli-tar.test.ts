import { spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, EXAMPLE, tempDir } from './helpers.js';
import { run } from './tar-fixtures.js';

const CONFIG = ['--config', '{"args":{"hostname":"web1"}}'];
let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir('cloudlets-cli-tar-');
});
afterAll(() => tmp.remove());

const leftovers = (dir: string) => readdirSync(dir).filter((n) => n.includes('.cloudlets-'));

describe('cloudlets tar', () => {
  it('writes a pax archive that GNU tar and bsdtar list, templates rendered, volatile left out', () => {
    const out = join(tmp.path, 'sample.tar');
    const r = cli(['tar', EXAMPLE, ...CONFIG, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    const gnu = run('tar', ['-tf', out]);
    expect(gnu.code, gnu.stderr).toBe(0);
    const names = gnu.stdout.toString().split('\n');
    expect(names).toContain('./');
    expect(names).toContain('./.cloudlet/manifest');
    expect(names).toContain('./etc/hostname');
    expect(names).toContain('./tmp/');
    expect(names).not.toContain('./tmp/scratch.txt'); // volatile
    expect(names).not.toContain('./var/log/syslog'); // volatile
    expect(run('bsdtar', ['-tf', out]).code).toBe(0);
    expect(run('tar', ['-xOf', out, './etc/hostname']).stdout.toString()).toContain('web1');
    expect(leftovers(tmp.path)).toEqual([]);
  });

  it('is reproducible: same bytes twice, to a file and to standard output, times clamped', () => {
    const a = join(tmp.path, 'a.tar');
    const b = join(tmp.path, 'b.tar');
    expect(cli(['tar', EXAMPLE, ...CONFIG, '-o', a, '--mtime', '2020-01-01T00:00:00Z']).code).toBe(0);
    expect(cli(['tar', EXAMPLE, ...CONFIG, '-o', b], { env: { SOURCE_DATE_EPOCH: '1577836800' } }).code).toBe(
      0,
    );
    const stdout = cli(['tar', EXAMPLE, ...CONFIG, '--mtime', '1577836800']);
    expect(stdout.code, stdout.stderr).toBe(0);
    const bytes = readFileSync(a);
    expect(readFileSync(b).equals(bytes)).toBe(true);
    expect(stdout.stdoutBytes.equals(bytes)).toBe(true);
    const listing = run('tar', ['--utc', '-tvf', a]).stdout.toString();
    for (const line of listing.trim().split('\n')) {
      const day = / (\d{4}-\d\d-\d\d) \d\d:\d\d /.exec(line)?.[1];
      expect(day! <= '2020-01-01', line).toBe(true);
    }
  });

  it('reads an archive image the same way as a directory (tar of a .tar.gz gives the same bytes)', () => {
    const a = join(tmp.path, 'dir.tar');
    expect(
      cli(['tar', EXAMPLE, ...CONFIG, '-o', a, '--mtime', '0', '--only', 'other', 'persistent']).code,
    ).toBe(0);
    const gz = join(tmp.path, 'dir.tar.gz');
    writeFileSync(gz, gzipSync(readFileSync(a)));
    const again = cli(['tar', gz, ...CONFIG, '--mtime', '0', '--only', 'other', 'persistent']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdoutBytes.equals(readFileSync(a))).toBe(true);
  });

  it('refuses an existing output without --force, and replaces it with --force', () => {
    const out = join(tmp.path, 'exists.tar');
    writeFileSync(out, 'precious');
    const r = cli(['tar', EXAMPLE, ...CONFIG, '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${out}: the output file exists`);
    expect(r.stderr).toContain('--force');
    expect(readFileSync(out, 'utf8')).toBe('precious');
    expect(cli(['tar', EXAMPLE, ...CONFIG, '-o', out, '--force']).code).toBe(0);
    expect(run('tar', ['-tf', out]).code).toBe(0);
    expect(leftovers(tmp.path)).toEqual([]);
  });

  it('leaves its own output out when it is written inside the image directory', () => {
    const image = join(tmp.path, 'self-image');
    cpSync(EXAMPLE, image, { recursive: true });
    // The walk may start before the temporary output exists (it then never sees it) or after; either way
    // neither it nor the output of an earlier run (walked for sure the second time) goes in.
    for (const run1 of [1, 2]) {
      const r = cli(['tar', image, ...CONFIG, '-o', join(image, 'usr/self.tar'), '--force']);
      expect(r.code, r.stderr).toBe(0);
      if (run1 === 2) expect(r.stderr).toContain('/usr/self.tar: the output itself, left out');
      const names = run('tar', ['-tf', join(image, 'usr/self.tar')]).stdout.toString();
      expect(names).toContain('./usr/bin/hello');
      expect(names).not.toContain('self.tar');
    }
  });

  it('rejects a bad --mtime and writes nothing', () => {
    const out = join(tmp.path, 'bad-mtime.tar');
    const r = cli(['tar', EXAMPLE, '-o', out, '--mtime', 'yesterday']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--mtime: not a time: "yesterday"');
    expect(existsSync(out)).toBe(false);
  });

  it('writes nothing, not even to standard output, when a template fails', () => {
    const img = join(tmp.path, 'bad-template');
    cpSync(EXAMPLE, img, { recursive: true });
    writeFileSync(join(img, 'etc/motd'), 'line one\n<%= no_such_variable %>\n');
    const toStdout = cli(['tar', img]);
    expect(toStdout.code).toBe(1);
    expect(toStdout.stdoutBytes.length).toBe(0);
    expect(toStdout.stderr).toMatch(/\/etc\/motd: line 2: ReferenceError: no_such_variable is not defined/);
    const out = join(tmp.path, 'bad-template.tar');
    expect(cli(['tar', img, '-o', out]).code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(leftovers(tmp.path)).toEqual([]);
  });

  it('leaves nothing behind when the source fails (a truncated archive image)', () => {
    const good = cli(['tar', EXAMPLE, ...CONFIG]).stdoutBytes;
    const broken = join(tmp.path, 'broken.tar');
    writeFileSync(broken, good.subarray(0, 3000));
    const out = join(tmp.path, 'from-broken.tar');
    const r = cli(['tar', broken, '-o', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken\.tar: .*truncated/);
    expect(existsSync(out)).toBe(false);
    expect(leftovers(tmp.path)).toEqual([]);
  });

  it('leaves no partial file when interrupted (SIGINT mid-way)', async () => {
    const image = join(tmp.path, 'big-image');
    cpSync(EXAMPLE, image, { recursive: true });
    const chunk = Buffer.alloc(4 << 20, 0x5a);
    for (let i = 0; i < 60; i++) writeFileSync(join(image, 'usr', `blob${i}`), chunk);
    const outDir = join(tmp.path, 'interrupted');
    cpSync(EXAMPLE, join(outDir, 'unrelated'), { recursive: true }); // makes the directory
    const out = join(outDir, 'big.tar');
    const child = spawn(process.execPath, [CLI, 'tar', image, ...CONFIG, '-o', out], {
      env: { ...process.env, CI: 'true' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // Wait until the temporary file has some content, then interrupt.
    let sent = false;
    for (let i = 0; i < 400 && !sent; i++) {
      const tmpFile = leftovers(outDir)[0];
      if (tmpFile && statSync(join(outDir, tmpFile)).size > 0) {
        child.kill('SIGINT');
        sent = true;
      } else await new Promise((r) => setTimeout(r, 10));
    }
    const code = await exited;
    expect(sent, `the command finished before it could be interrupted: ${stderr}`).toBe(true);
    expect(code).toBe(130);
    expect(stderr).toContain('interrupted by SIGINT');
    expect(existsSync(out)).toBe(false);
    expect(leftovers(outDir)).toEqual([]);
  });
});
