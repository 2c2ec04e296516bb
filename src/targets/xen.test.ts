import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseXlCfg } from '../../test/targets/xlcfg.js';
import { xlConfig } from './xen.js';

describe('xl.cfg', () => {
  it('HVM: boots the disk with SeaBIOS, or OVMF for a UEFI disk', () => {
    const cfg = parseXlCfg(xlConfig({ name: 'web', mode: 'hvm', disk: '/vm/web.img', diskFormat: 'raw' }));
    expect(cfg).toMatchObject({
      name: 'web',
      type: 'hvm',
      bios: 'seabios',
      memory: 1024,
      vcpus: 2,
      disk: ['format=raw, vdev=xvda, access=rw, target=/vm/web.img'],
      vif: [''],
    });
    expect(cfg.kernel).toBeUndefined();
    const uefi = parseXlCfg(
      xlConfig({ name: 'w', mode: 'hvm', disk: '/d.qcow2', diskFormat: 'qcow2', firmware: 'uefi' }),
    );
    expect(uefi.bios).toBe('ovmf');
    expect(uefi.disk).toEqual(['format=qcow2, vdev=xvda, access=rw, target=/d.qcow2']);
  });

  it('PVH and PV: kernel, ramdisk and extra from dom0, strings escaped', () => {
    for (const mode of ['pvh', 'pv'] as const) {
      const text = xlConfig({
        name: 'odd "name" \\ here',
        mode,
        disk: '/vm/a b.img',
        diskFormat: 'raw',
        kernel: '/vm/a.vmlinuz',
        ramdisk: '/vm/a.initrd',
        extra: 'root=UUID=0f3a console=hvc0',
      });
      const cfg = parseXlCfg(text);
      expect(cfg).toMatchObject({
        type: mode,
        name: 'odd "name" \\ here',
        kernel: '/vm/a.vmlinuz',
        ramdisk: '/vm/a.initrd',
        extra: 'root=UUID=0f3a console=hvc0',
      });
      expect(cfg.bios).toBeUndefined();
    }
  });

  it.skipIf(spawnSync('sh', ['-c', 'command -v xl']).status !== 0)('xl parses it (xl installed)', () => {
    // `xl create -n` (dry run) parses the config without a hypervisor.
    const r = spawnSync('xl', ['create', '-n', '/dev/stdin'], {
      input: xlConfig({ name: 'w', mode: 'hvm', disk: '/d.img', diskFormat: 'raw' }),
    });
    expect(r.status).toBe(0);
  });
});
