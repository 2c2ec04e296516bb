import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { scanDataRegions, writeGceArchive } from './gce.js';
import { oldGnuSparseHeaders, trailer } from './tar-header.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-gce-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A sparse file of `size` bytes with `regions` data regions of a few blocks each. */
async function sparseFile(path: string, size: number, regions: number, tail = false): Promise<void> {
  const fh = await open(path, 'w');
  await fh.truncate(size);
  for (let i = 0; i < regions; i++) {
    const data = Buffer.alloc(512 * (1 + (i % 3)), i + 1);
    await fh.write(data, 0, data.length, i * 64 * 1024 + 512 * (i % 5));
  }
  if (tail) await fh.write(Buffer.from('end'), 0, 3, size - 3);
  await fh.close();
}

describe('GCE archive', () => {
  it('finds data regions in 512-byte blocks, ending in a zero-length region at a hole', async () => {
    const f = join(dir, 'scan.raw');
    await sparseFile(f, 8 << 20, 3);
    const { size, map } = await scanDataRegions(f);
    expect(size).toBe(8 << 20);
    expect(map).toEqual([
      { offset: 0, length: 512 },
      { offset: 65536 + 512, length: 1024 },
      { offset: 131072 + 1024, length: 1536 },
      { offset: 8 << 20, length: 0 },
    ]);
  });

  for (const [regions, tail] of [
    [3, false],
    [30, true],
    [60, false],
  ] as const) {
    it(`GNU tar lists exactly disk.raw and restores it byte for byte (${regions} regions)`, async () => {
      const raw = join(dir, `disk-${regions}.img`);
      const size = 16 << 20;
      await sparseFile(raw, size, regions, tail);
      const out = join(dir, `image-${regions}.tar.gz`);
      const r = await writeGceArchive(raw, out, { mtime: 1700000000 });
      expect(r.diskSize).toBe(size);
      const listing = execFileSync('tar', ['-tvzf', out], { encoding: 'utf8' }).trim().split('\n');
      expect(listing).toHaveLength(1);
      expect(listing[0]).toMatch(new RegExp(` ${size} 2023-11-1\\d \\d\\d:\\d\\d disk\\.raw$`));
      const names = execFileSync('tar', ['-tzf', out], { encoding: 'utf8' });
      expect(names).toBe('disk.raw\n');
      // Holes stay holes: the archive is far smaller than the disk.
      expect(statSync(out).size).toBeLessThan(1 << 20);
      const x = join(dir, `x-${regions}`);
      execFileSync('mkdir', ['-p', x]);
      execFileSync('tar', ['-xzSf', out, '-C', x]);
      expect(readFileSync(join(x, 'disk.raw')).equals(readFileSync(raw))).toBe(true);
      // bsdtar reads GNU sparse members too.
      expect(execFileSync('bsdtar', ['-tzf', out], { encoding: 'utf8' })).toBe('disk.raw\n');
    });
  }

  it('writes sizes past 8 GiB in base-256, which GNU tar reads', () => {
    const size = 16 * 2 ** 30;
    const data = Buffer.alloc(512, 1);
    const head = oldGnuSparseHeaders({
      name: 'disk.raw',
      realSize: size,
      map: [
        { offset: 0, length: 512 },
        { offset: size, length: 0 },
      ],
      mtime: 0,
    });
    const file = join(dir, 'big.tar');
    writeFileSync(file, Buffer.concat([head, data, trailer(head.length + 512)]));
    expect(execFileSync('tar', ['-tvf', file], { encoding: 'utf8' })).toMatch(
      / 17179869184 (1970-01-01|1969-12-31) .*disk\.raw\n$/,
    );
  });

  it('is reproducible: the same disk and mtime give the same bytes (gzip without name or time)', async () => {
    const raw = join(dir, 'r.img');
    await sparseFile(raw, 4 << 20, 7, true);
    await writeGceArchive(raw, join(dir, 'a.tar.gz'), { mtime: 1 });
    await writeGceArchive(raw, join(dir, 'b.tar.gz'), { mtime: 1 });
    const a = readFileSync(join(dir, 'a.tar.gz'));
    expect(a.equals(readFileSync(join(dir, 'b.tar.gz')))).toBe(true);
    expect(a.readUInt32LE(4)).toBe(0); // gzip MTIME
    expect(a[3]! & 0x08).toBe(0); // no FNAME
  });

  it('refuses an existing output without force and leaves nothing when interrupted', async () => {
    const raw = join(dir, 'i.img');
    await sparseFile(raw, 4 << 20, 2);
    const out = join(dir, 'exists.tar.gz');
    writeFileSync(out, 'x');
    await expect(writeGceArchive(raw, out, { mtime: 1 })).rejects.toMatchObject({ code: 'EEXIST' });
    const ac = new AbortController();
    ac.abort();
    const out2 = join(dir, 'aborted.tar.gz');
    await expect(writeGceArchive(raw, out2, { mtime: 1, signal: ac.signal })).rejects.toMatchObject({
      code: 'EINTERRUPTED',
    });
    expect(execFileSync('ls', ['-a', dir], { encoding: 'utf8' })).not.toMatch(/aborted|\.tmp/);
  });
});
