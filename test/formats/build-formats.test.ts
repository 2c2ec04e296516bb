// Slow end-to-end tests of `cloudlets build --format qcow2|vmdk|vhd|vhdx|vdi`: the fixture image built into
// each container, checked by qemu-img against the raw build of the same image, built twice under
// SOURCE_DATE_EPOCH for byte-identical output, and booted in QEMU (SeaBIOS once per format, OVMF for
// qcow2) with an explicit format=, -snapshot. The fixture comes from test/boot/helpers.ts.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootDisk, bootSkipReason, ensureFixture } from '../boot/helpers.js';
import { CLI, cli, tempDir } from '../helpers.js';

const skip = process.env.CLOUDLETS_SKIP_BOOT === '1' ? 'CLOUDLETS_SKIP_BOOT=1' : bootSkipReason();
if (skip) console.log(`format boot tests skipped: ${skip}`);
const SLOW = 900_000;
const MARKER = 'configured-marker-42';
const config = JSON.stringify({ args: { marker: MARKER } });
const env = { SOURCE_DATE_EPOCH: '1700000000' };
const tmp = tempDir('cloudlets-formats-boot-');
let fixture = '';
let raw = '';
const timings: string[] = [];

beforeAll(() => {
  if (skip) return;
  fixture = ensureFixture();
  raw = join(tmp.path, 'disk.raw');
  const r = cli(['build', fixture, '-o', raw, '--config', config], { env });
  if (r.code !== 0) throw new Error(r.stderr);
}, 600_000);
afterAll(() => {
  if (timings.length) console.log(`boot times: ${timings.join(', ')}`);
  tmp.remove();
});

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

function qemuImg(args: string[]) {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

interface Case {
  format: string;
  subformat?: string;
  qemu: string;
  /** qemu-img check supports it (not vpc). */
  check: boolean;
  boot: Array<'bios' | 'uefi'>;
}

const CASES: Case[] = [
  { format: 'qcow2', qemu: 'qcow2', check: true, boot: ['bios', 'uefi'] },
  { format: 'vmdk', qemu: 'vmdk', check: true, boot: ['bios'] }, // streamOptimized, the default
  { format: 'vmdk', subformat: 'monolithicSparse', qemu: 'vmdk', check: true, boot: [] },
  { format: 'vhd', qemu: 'vpc', check: false, boot: ['bios'] }, // fixed, the default
  { format: 'vhd', subformat: 'dynamic', qemu: 'vpc', check: false, boot: [] },
  { format: 'vhdx', qemu: 'vhdx', check: true, boot: ['bios'] },
  { format: 'vdi', qemu: 'vdi', check: true, boot: ['bios'] },
];

describe.skipIf(skip !== undefined)('cloudlets build --format (slow: QEMU)', () => {
  for (const c of CASES) {
    const label = c.subformat ? `${c.format} ${c.subformat}` : c.format;
    it(
      `${label}: qemu-img clean and identical to the raw build, reproducible${c.boot.length ? `, boots (${c.boot.join(', ')})` : ''}`,
      async () => {
        const disk = join(tmp.path, `disk-${label.replace(' ', '-')}.${c.format}`);
        const args = ['build', fixture, '--format', c.format, '-o', disk, '--config', config];
        if (c.subformat) args.push('--subformat', c.subformat);
        const r = cli(args, { env });
        expect(r.stderr).toContain(`(${label})`);
        expect(r.code).toBe(0);
        if (c.check) {
          const check = qemuImg(['check', '-f', c.qemu, disk]);
          expect(check.code, check.out).toBe(0);
        }
        const cmp = qemuImg(['compare', '-f', c.qemu, '-F', 'raw', disk, raw]);
        expect(cmp.out).toContain('Images are identical');
        const info = JSON.parse(qemuImg(['info', '--output=json', '-f', c.qemu, disk]).out);
        expect(info['virtual-size']).toBe(readFileSync(raw).length);

        const again = join(tmp.path, 'again', `disk-${label.replace(' ', '-')}.${c.format}`);
        mkdirSync(join(tmp.path, 'again'), { recursive: true });
        expect(cli([...args.slice(0, 4), '-o', again, ...args.slice(6)], { env }).code).toBe(0);
        expect(sha256(again)).toBe(sha256(disk));
        rmSync(again);

        for (const fw of c.boot) {
          const b = await bootDisk(disk, fw, 120_000, c.qemu);
          timings.push(`${label}/${fw} ${b.seconds.toFixed(1)} s`);
          if (!b.output.includes(`CLOUDLETS-BOOT-MARKER: ${MARKER} :END`)) console.log(b.output.slice(-3000));
          expect(b.timedOut).toBe(false);
          expect(b.output).toContain(`CLOUDLETS-BOOT-MARKER: ${MARKER} :END`);
        }
        rmSync(disk);
        expect(readdirSync(tmp.path).filter((n) => n.endsWith('.tmp') || n.endsWith('.spill'))).toEqual([]);
      },
      SLOW,
    );
  }

  it('an interrupted VMDK build leaves neither the output nor its temporary and spill files', async () => {
    const img = join(tmp.path, 'big');
    cpSync(fixture, img, { recursive: true, verbatimSymlinks: true });
    for (let i = 0; i < 2; i++) writeFileSync(join(img, `big${i}`), Buffer.alloc(128 * 1024 * 1024, i + 1));
    const outDir = join(tmp.path, 'intr');
    mkdirSync(outDir);
    const child = spawn(
      process.execPath,
      [CLI, 'build', img, '--format', 'vmdk', '-o', join(outDir, 'd.vmdk')],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    let sent = false;
    for (let i = 0; i < 4000 && !sent; i++) {
      if (readdirSync(outDir).some((n) => n.endsWith('.spill'))) {
        child.kill('SIGINT');
        sent = true;
      } else await new Promise((r) => setTimeout(r, 5));
    }
    expect(sent).toBe(true);
    expect(await exited).toBe(130);
    expect(readdirSync(outDir)).toEqual([]);
    rmSync(img, { recursive: true, force: true });
  }, 120_000);

  it('bad input: an unknown format lists the valid ones; a subformat the format lacks is refused', () => {
    const out = join(tmp.path, 'bad.img');
    const r = cli(['build', fixture, '--format', 'qcow3', '-o', out]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/qcow2.*vmdk.*vhd.*vhdx.*vdi/);
    const s = cli(['build', fixture, '--format', 'qcow2', '--subformat', 'fixed', '-o', out]);
    expect(s.code).not.toBe(0);
    expect(s.stderr).toMatch(/--subformat/);
    const v = cli(['build', fixture, '--format', 'vhd', '--subformat', 'sparse', '-o', out]);
    expect(v.code).not.toBe(0);
    expect(v.stderr).toMatch(/fixed, dynamic/);
    expect(existsSync(out)).toBe(false);
  });
});
