// Each container format against real consumers: a synthetic write pattern (test/formats/pattern.ts) goes
// into the container and into a raw file; `qemu-img check` must be clean where QEMU supports it,
// `qemu-img compare` must find identical content, `qemu-img info` must report the exact virtual size,
// and the same writes with the same seed must give the same bytes.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { openRawTarget } from '../../src/disk/raw-target.js';
import { CloudletsError } from '../../src/errors.js';
import { createDeflatePool } from '../../src/formats/deflate-pool.js';
import { type DiskFormat, type DiskTargetOptions, openDiskTarget } from '../../src/formats/index.js';
import { vhdGeometry } from '../../src/formats/vhd.js';
import { tempDir } from '../helpers.js';
import { apply, PATTERN_SIZE, pattern } from './pattern.js';

const hasQemuImg = spawnSync('qemu-img', ['--version']).status === 0;
if (!hasQemuImg) console.log('format tests skipped: qemu-img is not installed (Debian package qemu-utils)');
const tmp = tempDir('cloudlets-formats-');
afterAll(() => tmp.remove());
const OPTS: DiskTargetOptions = { seed: 'test-seed', timestamp: 1700000000, name: 'disk' };

function qemuImg(args: string[]) {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

let rawPath: string | undefined;
async function raw(): Promise<string> {
  if (!rawPath) {
    rawPath = join(tmp.path, 'pattern.raw');
    await apply(await openRawTarget(rawPath, PATTERN_SIZE), pattern());
  }
  return rawPath;
}

interface Case {
  name: string;
  format: DiskFormat;
  qemu: string;
  subformat?: DiskTargetOptions['subformat'];
  check: boolean;
}

const CASES: Case[] = [
  { name: 'qcow2', format: 'qcow2', qemu: 'qcow2', check: true },
  { name: 'vmdk streamOptimized', format: 'vmdk', qemu: 'vmdk', subformat: 'streamOptimized', check: true },
  { name: 'vmdk monolithicSparse', format: 'vmdk', qemu: 'vmdk', subformat: 'monolithicSparse', check: true },
  // qemu-img check does not support vpc: compare only.
  { name: 'vhd fixed', format: 'vhd', qemu: 'vpc', subformat: 'fixed', check: false },
  { name: 'vhd dynamic', format: 'vhd', qemu: 'vpc', subformat: 'dynamic', check: false },
  { name: 'vhdx', format: 'vhdx', qemu: 'vhdx', check: true },
  { name: 'vdi', format: 'vdi', qemu: 'vdi', check: true },
];

describe.skipIf(!hasQemuImg)('disk container formats read back by qemu-img', () => {
  for (const c of CASES) {
    it(`${c.name}: check clean, content identical to raw, exact size, reproducible`, async () => {
      const out = join(tmp.path, `${c.name.replace(/ /g, '-')}.img`);
      const opts = { ...OPTS, subformat: c.subformat };
      await apply(await openDiskTarget(c.format, out, PATTERN_SIZE, opts), pattern());
      if (c.check) {
        const check = qemuImg(['check', '-f', c.qemu, out]);
        expect(check.out).toMatch(/No errors were found/);
        expect(check.code).toBe(0);
      }
      const cmp = qemuImg(['compare', '-f', c.qemu, '-F', 'raw', out, await raw()]);
      expect(cmp.out).toContain('Images are identical');
      expect(cmp.code).toBe(0);
      const info = JSON.parse(qemuImg(['info', '--output=json', '-f', c.qemu, out]).out);
      expect(info['virtual-size']).toBe(PATTERN_SIZE);
      // Sparse formats allocate only what was written: far less than the 1 GiB disk.
      if (c.subformat !== 'fixed') expect(statSync(out).blocks * 512).toBeLessThan(32 * 1024 * 1024);

      const again = `${out}.again`;
      await apply(await openDiskTarget(c.format, again, PATTERN_SIZE, opts), pattern());
      expect(sha256(again)).toBe(sha256(out));
      // No scratch file left beside the output.
      expect(readdirSync(tmp.path).filter((n) => n.endsWith('.spill'))).toEqual([]);
    });
  }
});

describe.skipIf(!hasQemuImg)('qcow2 size', () => {
  it('is at most 1.02 x what qemu-img convert -O qcow2 writes for the same content', async () => {
    const ours = join(tmp.path, 'size.qcow2');
    const theirs = join(tmp.path, 'size-ref.qcow2');
    await apply(await openDiskTarget('qcow2', ours, PATTERN_SIZE, OPTS), pattern());
    expect(qemuImg(['convert', '-f', 'raw', '-O', 'qcow2', await raw(), theirs]).code).toBe(0);
    expect(statSync(ours).size).toBeLessThanOrEqual(1.02 * statSync(theirs).size);
  });
});

describe('VHD', () => {
  it('geometry follows the specification: 1 GiB is 2080/16/63, huge disks stop at 65535/16/255', () => {
    expect(vhdGeometry(1024 ** 3)).toEqual({ cylinders: 2080, heads: 16, sectors: 63 });
    expect(vhdGeometry(20 * 1024 * 1024)).toEqual({ cylinders: 602, heads: 4, sectors: 17 });
    expect(vhdGeometry(4 * 1024 ** 4)).toEqual({ cylinders: 65535, heads: 16, sectors: 255 });
  });

  it('a fixed VHD of a size that is not a whole MiB is refused, naming the rule', async () => {
    const out = join(tmp.path, 'odd.vhd');
    const err = await openDiskTarget('vhd', out, 1024 * 1024 + 512, OPTS).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CloudletsError);
    expect((err as CloudletsError).message).toMatch(/whole number of MiB/);
    expect((err as CloudletsError).where).toBe('--size');
  });

  it('the footer carries the seed UUID, the time stamp since 2000 and a valid checksum', async () => {
    const out = join(tmp.path, 'footer.vhd');
    const t = await openDiskTarget('vhd', out, 4 * 1024 * 1024, OPTS);
    await t.write(0, Buffer.alloc(512, 1));
    await t.finish();
    const f = readFileSync(out).subarray(4 * 1024 * 1024);
    expect(f.length).toBe(512);
    expect(f.toString('latin1', 0, 8)).toBe('conectix');
    expect(f.readUInt32BE(24)).toBe(1700000000 - 946684800);
    expect(f.readUInt32BE(60)).toBe(2); // fixed
    const sum = [...f].reduce((a, b, i) => (i >= 64 && i < 68 ? a : a + b), 0);
    expect(f.readUInt32BE(64)).toBe(~sum >>> 0);
  });
});

describe('VMDK streamOptimized', () => {
  it('abort removes the spill file and leaves the output for the caller to remove', async () => {
    const out = join(tmp.path, 'aborted.vmdk');
    const t = await openDiskTarget('vmdk', out, 8 * 1024 * 1024, OPTS);
    await t.write(65536, Buffer.alloc(4096, 7));
    expect(readdirSync(tmp.path)).toContain('aborted.vmdk.spill');
    await t.abort();
    expect(readdirSync(tmp.path)).not.toContain('aborted.vmdk.spill');
    await t.abort(); // twice is harmless
  });

  it('the deflate pool stores random grains, takes the zeros between random bytes, deflates text', async () => {
    const pool = createDeflatePool({ size: 2 });
    try {
      const random = randomBytes(65536);
      // Small compressed files laid out in 4 KiB blocks: 2.5 KiB of random bytes, then zeros.
      const tails = Buffer.alloc(65536);
      for (let at = 0; at < tails.length; at += 4096) randomBytes(2560).copy(tails, at);
      const text = Buffer.from(
        'a line of text, as configuration files have them\n'.repeat(1400).slice(0, 65536),
      );
      const batch = Buffer.concat([random, tails, text]);
      const [r, t, x] = await pool.deflate(new Uint8Array(batch).buffer as ArrayBuffer, 65536);
      for (const [out, input] of [
        [r, random],
        [t, tails],
        [x, text],
      ] as const) {
        expect(inflateSync(out as Buffer).equals(input)).toBe(true);
      }
      expect(r!.length).toBeGreaterThan(65536); // stored: no time spent deflating it
      expect(t!.length).toBeLessThan(0.66 * 65536); // the zeros went, the random bytes stayed
      expect(x!.length).toBeLessThan(0.05 * 65536);
    } finally {
      await pool.close();
    }
  });

  it('the deflate pool returns results in submission order', async () => {
    const pool = createDeflatePool({ size: 3 });
    try {
      const inputs = Array.from({ length: 12 }, (_, i) => Buffer.alloc(65536 * ((i % 3) + 1), i));
      const outs = await Promise.all(
        inputs.map((b) => pool.deflate(new Uint8Array(b).buffer as ArrayBuffer, 65536)),
      );
      outs.forEach((grains, i) => {
        expect(grains.length).toBe((i % 3) + 1);
        expect(Buffer.concat(grains.map((g) => inflateSync(g))).equals(inputs[i]!)).toBe(true);
      });
    } finally {
      await pool.close();
    }
  });
});
