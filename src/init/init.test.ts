import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateManifest } from '../manifest/index.js';
import { initImage, parseElfHeader, resolveInRoot } from './index.js';

/** The first 64 bytes of an ELF executable: enough header for e_machine. */
function elfHeader(machine: number, opts: { bits?: 32 | 64; endian?: 'little' | 'big' } = {}): Buffer {
  const buf = Buffer.alloc(64);
  buf.set([0x7f, 0x45, 0x4c, 0x46], 0);
  buf[4] = opts.bits === 32 ? 1 : 2;
  const big = opts.endian === 'big';
  buf[5] = big ? 2 : 1;
  buf[6] = 1; // EV_CURRENT
  if (big) {
    buf.writeUInt16BE(2, 16); // ET_EXEC
    buf.writeUInt16BE(machine, 18);
  } else {
    buf.writeUInt16LE(2, 16);
    buf.writeUInt16LE(machine, 18);
  }
  return buf;
}

let root: string;
let outside: string;
beforeEach(async () => {
  const base = await mkdtemp(join(tmpdir(), 'cloudlets-init-'));
  root = join(base, 'rootfs');
  outside = join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
});
afterEach(async () => {
  await rm(dirname(root), { recursive: true, force: true });
});

async function tree(
  files: Record<string, string | Buffer | { link: string } | { dir: true }>,
): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    const host = join(root, path);
    await mkdir(dirname(host), { recursive: true });
    if (typeof content === 'string' || Buffer.isBuffer(content)) await writeFile(host, content);
    else if ('link' in content) await symlink(content.link, host);
    else await mkdir(host, { recursive: true });
  }
}

describe('parseElfHeader', () => {
  it.each([
    [62, 64, 'little', 'x86_64'],
    [3, 32, 'little', 'i386'],
    [183, 64, 'little', 'aarch64'],
    [40, 32, 'little', 'arm'],
    [243, 64, 'little', 'riscv64'],
    [21, 64, 'little', 'ppc64le'],
    [22, 64, 'big', 's390x'],
  ] as const)('e_machine %i (%i-bit %s) is %s', (machine, bits, endian, arch) => {
    expect(parseElfHeader(elfHeader(machine, { bits, endian }))?.arch).toBe(arch);
  });
  it('refuses what is not ELF', () => {
    expect(parseElfHeader(Buffer.from('#!/bin/sh\nexec /bin/busybox init\n'))).toBeUndefined();
    expect(parseElfHeader(elfHeader(62).subarray(0, 10))).toBeUndefined();
  });
});

describe('resolveInRoot', () => {
  it('follows links inside the root, chroot-style, never out of it', async () => {
    await writeFile(join(outside, 'secret'), 'host file');
    await tree({
      '/usr/lib/systemd/systemd': 'x',
      '/lib': { link: 'usr/lib' },
      '/sbin/init': { link: '/lib/systemd/systemd' },
      '/escape': { link: '../../../../../outside/secret' },
      '/abs-escape': { link: join(outside, 'secret') },
      '/loop': { link: '/loop' },
    });
    expect((await resolveInRoot(root, '/sbin/init'))?.imagePath).toBe('/usr/lib/systemd/systemd');
    // `..` stops at the root, so this names /outside/secret inside the root, which does not exist.
    expect(await resolveInRoot(root, '/escape')).toBeUndefined();
    expect(await resolveInRoot(root, '/abs-escape')).toBeUndefined();
    expect(await resolveInRoot(root, '/loop')).toBeUndefined();
  });
});

describe('initImage', () => {
  async function debianLike() {
    await tree({
      '/usr/lib/systemd/systemd': elfHeader(62),
      '/lib': { link: 'usr/lib' },
      '/sbin/init': { link: '/lib/systemd/systemd' },
      '/bin/sh': elfHeader(62),
      '/boot/vmlinuz-6.1.0-13-amd64': 'kernel',
      '/boot/initrd.img-6.1.0-13-amd64': 'initrd',
      '/boot/vmlinuz-5.10.0-28-amd64': 'old kernel',
      '/boot/vmlinuz-6.1.0-9-amd64': 'older kernel, no initrd',
      '/tmp': { dir: true },
      '/run': { dir: true },
      '/var/run': { link: '/run' },
      '/var/tmp': { dir: true },
      '/proc': { dir: true },
      '/var/cache/apt/archives/partial': { dir: true },
      '/var/lib/apt/lists': { dir: true },
      '/var/log': { dir: true },
      '/home': { dir: true },
    });
    await chmod(join(root, 'usr/lib/systemd/systemd'), 0o755);
  }

  it('detects kernels, initrds, init, arch, volatile and persistent paths, and says why', async () => {
    await debianLike();
    const result = await initImage(root);
    expect(result.written).toBe(true);
    expect(result.manifest).toEqual({
      name: 'rootfs',
      arch: 'x86_64',
      args: { type: 'object', properties: {} },
      templates: [],
      persistent: ['/var/lib', '/var/log', '/home'],
      volatile: [
        '/tmp/.+',
        '/var/tmp/.+',
        '/run/.+',
        '/proc/.+',
        '/var/cache/apt/archives/.+\\.deb',
        '/var/cache/apt/archives/partial/.+',
        '/var/cache/apt/.+\\.bin$',
        '/var/lib/apt/lists/(?!partial).+',
      ],
      entrypoints: [
        {
          type: 'kernel',
          path: '/boot/vmlinuz-6.1.0-13-amd64',
          initrd: '/boot/initrd.img-6.1.0-13-amd64',
          cmdline: 'console=tty0 console=ttyS0',
        },
        { type: 'kernel', path: '/boot/vmlinuz-6.1.0-9-amd64', cmdline: 'console=tty0 console=ttyS0' },
        { type: 'kernel', path: '/boot/vmlinuz-5.10.0-28-amd64', cmdline: 'console=tty0 console=ttyS0' },
        { type: 'init', path: '/sbin/init' },
      ],
    });
    expect(result.detected).toContainEqual({
      what: 'arch',
      path: '/sbin/init',
      why: 'ELF header (a link to /usr/lib/systemd/systemd): e_machine 62, 64-bit little-endian = x86_64',
    });
    expect(result.detected).toContainEqual({
      what: 'initrd',
      path: '/boot/initrd.img-6.1.0-13-amd64',
      why: 'named after kernel 6.1.0-13-amd64',
    });
    // What it wrote is a valid manifest, and no temporary file is left behind.
    const written = JSON.parse(await readFile(join(root, '.cloudlet/manifest'), 'utf8'));
    expect(written).toEqual(result.manifest);
    expect(validateManifest(written, { where: 'm', strict: true }).manifest).toEqual(result.manifest);
    expect(await readdir(join(root, '.cloudlet'))).toEqual(['manifest']);
  });

  it('finds initramfs-<ver>.img and the arch of busybox when init is a script', async () => {
    await tree({
      '/boot/vmlinuz-6.6.7-lts': 'k',
      '/boot/initramfs-6.6.7-lts.img': 'i',
      '/sbin/init': '#!/bin/sh\nexec /bin/busybox init\n',
      '/bin/busybox': elfHeader(183),
    });
    await chmod(join(root, 'sbin/init'), 0o755);
    const { manifest } = await initImage(root, { dryRun: true });
    expect(manifest.arch).toBe('aarch64');
    expect(manifest.entrypoints[0]).toMatchObject({ initrd: '/boot/initramfs-6.6.7-lts.img' });
    expect(manifest.entrypoints[1]).toEqual({ type: 'init', path: '/sbin/init' });
  });

  it('never reads outside the root through links', async () => {
    await writeFile(join(outside, 'init'), elfHeader(62));
    await chmod(join(outside, 'init'), 0o755);
    await mkdir(join(outside, 'boot'));
    await writeFile(join(outside, 'boot', 'vmlinuz-1.0'), 'k');
    await tree({
      '/sbin/init': { link: join(outside, 'init') },
      '/bin/sh': { link: '../../../../../../outside/init' },
      '/boot': { link: '../outside/boot' },
      '/var/lib': { link: join(outside) },
    });
    const { manifest, detected } = await initImage(root, { dryRun: true });
    expect(detected).toEqual([]);
    expect(manifest.arch).toBeUndefined();
    expect(manifest.entrypoints).toEqual([]);
    expect(manifest.persistent).toEqual([]);
  });

  it('refuses to replace a manifest without --force, and replaces it with', async () => {
    await tree({ '/.cloudlet/manifest': '{"name": "mine"}', '/tmp': { dir: true } });
    await expect(initImage(root)).rejects.toMatchObject({
      code: 'EEXIST',
      where: join(root, '.cloudlet/manifest'),
    });
    expect(await readFile(join(root, '.cloudlet/manifest'), 'utf8')).toBe('{"name": "mine"}');
    const dry = await initImage(root, { dryRun: true });
    expect(dry.written).toBe(false);
    expect(await readFile(join(root, '.cloudlet/manifest'), 'utf8')).toBe('{"name": "mine"}');
    await initImage(root, { force: true });
    expect(JSON.parse(await readFile(join(root, '.cloudlet/manifest'), 'utf8')).volatile).toEqual([
      '/tmp/.+',
    ]);
  });

  it('refuses to write through a .cloudlet link, and a DIR that is not a directory', async () => {
    await tree({ '/.cloudlet': { link: outside } });
    await expect(initImage(root, { force: true })).rejects.toMatchObject({ code: 'EPATH' });
    expect(await readdir(outside)).toEqual([]);
    await expect(initImage(join(root, 'nope'))).rejects.toMatchObject({ code: 'ESOURCE' });
  });
});
