import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BlockTarget } from '../../disk/target.js';
import { fat32Geometry, writeFat32 } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-fat-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileTarget(path: string, size: number): BlockTarget {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  return {
    size,
    async write(offset, data) {
      writeSync(fd, data, 0, data.length, offset);
    },
    async finish() {
      closeSync(fd);
    },
  };
}

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

const files = [
  { path: '/EFI/BOOT/BOOTX64.EFI', data: Buffer.alloc(300_000, 7) },
  { path: '/EFI/BOOT/grub.cfg', data: Buffer.from('set timeout=0\n') },
  { path: '/boot/A Long File Name.txt', data: Buffer.from('long name\n') },
  { path: '/boot/MixedCase.Conf', data: Buffer.from('mixed\n') },
  { path: '/empty', data: Buffer.alloc(0) },
];

async function build(path: string) {
  const size = 40 * 1024 * 1024;
  const t = fileTarget(path, size);
  await writeFat32(t, 0, files, { size, volumeId: 0x12345678, label: 'ESP', mtime: 1_700_000_000 });
  await t.finish();
}

describe('writeFat32', () => {
  it('refuses volumes too small for FAT32', () => {
    expect(() => fat32Geometry(16 * 1024 * 1024)).toThrow(/33 MiB/);
  });

  it.skipIf(!has('fsck.vfat') || !has('mtype'))(
    'writes a volume fsck.vfat accepts and mtools reads back',
    async () => {
      const img = join(dir, 'esp.img');
      await build(img);
      const fsck = spawnSync('fsck.vfat', ['-n', img], { encoding: 'utf8' });
      // A clean volume prints only the version line and the summary line.
      const remarks = (fsck.stdout + fsck.stderr)
        .split('\n')
        .filter((l) => l && !l.startsWith('fsck.fat ') && !l.startsWith(`${img}: `));
      expect(remarks).toEqual([]);
      expect(fsck.status).toBe(0);
      const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
      const ls = execFileSync('mdir', ['-/', '-b', '-i', img, '::'], { encoding: 'utf8', env });
      expect(ls.split('\n').filter(Boolean).sort()).toEqual(
        [
          '::/EFI/',
          '::/EFI/BOOT/',
          '::/EFI/BOOT/BOOTX64.EFI',
          '::/EFI/BOOT/grub.cfg',
          '::/boot/',
          '::/boot/A Long File Name.txt',
          '::/boot/MixedCase.Conf',
          '::/empty',
        ].sort(),
      );
      for (const f of files) {
        const out = execFileSync('mtype', ['-i', img, `::${f.path}`], { env });
        expect(out.equals(f.data)).toBe(true);
      }
      const label = execFileSync('mlabel', ['-s', '-i', img, '::'], { encoding: 'utf8', env });
      expect(label).toMatch(/ESP/);
    },
  );

  it('is deterministic', async () => {
    const { readFileSync } = await import('node:fs');
    await build(join(dir, 'a.img'));
    await build(join(dir, 'b.img'));
    expect(readFileSync(join(dir, 'a.img')).equals(readFileSync(join(dir, 'b.img')))).toBe(true);
  });
});
