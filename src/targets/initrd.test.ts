import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { driverState, inspectInitrd, moduleName } from './initrd.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-initrd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A newc cpio of `files` (relative paths → content), made by the cpio command. */
function cpio(files: Record<string, string>): Buffer {
  const root = join(dir, `tree${n++}`);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  const list = `${Object.keys(files).sort().join('\n')}\n`;
  return execFileSync('cpio', ['-o', '-H', 'newc', '--quiet', '--reproducible', '-R', '0:0'], {
    cwd: root,
    input: list,
  });
}
const gzip = (b: Buffer) => execFileSync('gzip', ['-n'], { input: b });

const KVER = '6.1.0-28-cloud-amd64';
const withDrivers = {
  init: '#!/bin/sh\n',
  [`lib/modules/${KVER}/kernel/drivers/nvme/host/nvme.ko`]: 'ELF',
  [`lib/modules/${KVER}/kernel/drivers/nvme/host/nvme-core.ko.xz`]: 'XZ',
  [`lib/modules/${KVER}/kernel/drivers/net/ethernet/amazon/ena/ena.ko`]: 'ELF',
};
const without = { init: '#!/bin/sh\n', [`lib/modules/${KVER}/kernel/drivers/block/virtio_blk.ko`]: 'ELF' };

describe('initramfs inspection', () => {
  it('names modules as the kernel does', () => {
    expect(moduleName('kernel/drivers/block/xen-blkfront.ko.zst')).toBe('xen_blkfront');
    expect(moduleName('lib/modules/x/nvme.ko')).toBe('nvme');
    expect(moduleName('etc/nvme.conf')).toBeUndefined();
  });

  it('finds nvme and ena in a gzip-compressed cpio, and not in one without them', async () => {
    const yes = await inspectInitrd(gzip(cpio(withDrivers)));
    expect(driverState(yes, 'nvme')).toBe('module');
    expect(driverState(yes, 'ena')).toBe('module');
    expect(driverState(yes, 'nvme-core')).toBe('module');
    expect(yes.unreadable).toBeUndefined();
    const no = await inspectInitrd(gzip(cpio(without)));
    expect(driverState(no, 'nvme')).toBe('not found as a module');
    expect(driverState(no, 'ena')).toBe('not found as a module');
    expect(driverState(no, 'virtio_blk')).toBe('module');
  });

  it('reads past an uncompressed early microcode cpio and zero padding', async () => {
    const early = cpio({ 'kernel/x86/microcode/GenuineIntel.bin': 'ucode' });
    const pad = Buffer.alloc((512 - (early.length % 512)) % 512);
    const c = await inspectInitrd(Buffer.concat([early, pad, gzip(cpio(withDrivers)), Buffer.alloc(300)]));
    expect(c.modules.has('nvme')).toBe(true);
    expect(c.files).toBe(5);
  });

  it('reads zstd and xz compressed archives (with the usual tools)', async () => {
    const raw = cpio(withDrivers);
    const zst = execFileSync('zstd', ['-q', '-c'], { input: raw });
    const xz = execFileSync('xz', ['-c', '--check=crc32'], { input: raw });
    expect((await inspectInitrd(zst)).modules.has('ena')).toBe(true);
    expect((await inspectInitrd(xz)).modules.has('ena')).toBe(true);
  });

  it('counts drivers listed in modules.builtin as built in', async () => {
    const c = await inspectInitrd(
      cpio({
        [`lib/modules/${KVER}/modules.builtin`]: 'kernel/drivers/nvme/host/nvme.ko\nkernel/fs/ext4/ext4.ko\n',
      }),
    );
    expect(driverState(c, 'nvme')).toBe('builtin');
    expect(driverState(c, 'ena', new Set(['ena']))).toBe('builtin');
  });

  it('says what it could not read instead of failing', async () => {
    const c = await inspectInitrd(Buffer.from('not an initramfs at all'));
    expect(c.unreadable).toMatch(/unknown compression/);
    const bad = await inspectInitrd(Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    expect(bad.unreadable).toMatch(/gzip/);
  });
});
