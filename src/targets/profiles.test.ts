import { describe, expect, it } from 'vitest';
import { ec2BootMode, registerImageInput } from './ec2.js';
import { planTarget, TARGETS } from './profiles.js';

const MiB = 1 << 20;
const GiB = 1 << 30;

describe('target profiles', () => {
  it('choose each target’s container and boot mode by default', () => {
    const got = Object.fromEntries(
      TARGETS.map((t) => {
        const p = planTarget({ target: t, size: 'auto' });
        return [t, `${p.format}/${p.diskFormat}${p.subformat ? `:${p.subformat}` : ''} ${p.boot}`];
      }),
    );
    expect(got).toEqual({
      kvm: 'qcow2/qcow2 hybrid',
      vmware: 'ova/vmdk:streamOptimized hybrid',
      virtualbox: 'ova/vmdk:streamOptimized hybrid',
      hyperv: 'vhdx/vhdx hybrid',
      azure: 'vhd/vhd:fixed bios',
      xen: 'raw/raw hybrid',
      ec2: 'raw/raw hybrid',
      gce: 'gce/raw hybrid',
    });
  });

  it('--format ova and gce without a target mean VMware’s OVA and the GCE archive', () => {
    expect(planTarget({ format: 'ova', size: 'auto' }).target).toBe('vmware');
    expect(planTarget({ format: 'gce', size: 'auto' }).target).toBe('gce');
  });

  it('rounds auto sizes up: GCE to a whole GiB, Azure to a whole MiB', () => {
    expect(planTarget({ target: 'gce', size: 'auto' }).roundAutoSize(300 * MiB + 1)).toBe(GiB);
    expect(planTarget({ target: 'azure', size: 'auto' }).roundAutoSize(300 * MiB + 1)).toBe(301 * MiB);
    expect(planTarget({ target: 'kvm', size: 'auto' }).roundAutoSize(300 * MiB + 1)).toBe(300 * MiB + 1);
  });

  it('refuses what a target rejects, quoting the rule, before anything is written', () => {
    const cases: [Parameters<typeof planTarget>[0], RegExp, string][] = [
      [
        { target: 'azure', format: 'vhdx', size: 'auto' },
        /^azure: takes vhd \(fixed\); not vhdx$/,
        '--format',
      ],
      [
        { target: 'azure', subformat: 'dynamic', size: 'auto' },
        /^azure: a vhd disk must be fixed/,
        '--subformat',
      ],
      [{ target: 'gce', size: 1536 * MiB }, /^gce: the disk size must be a whole number of GiB/, '--size'],
      [
        { target: 'ec2', format: 'vmdk', subformat: 'monolithicSparse', size: 'auto' },
        /streamOptimized/,
        '--subformat',
      ],
      [{ target: 'hyperv', format: 'vhd', boot: 'uefi', size: 'auto' }, /generation 2/, '--format'],
      [{ target: 'virtualbox', boot: 'uefi', size: 'auto' }, /^virtualbox: .*BIOS firmware/, '--boot'],
      [{ target: 'kvm', format: 'ova', size: 'auto' }, /^kvm: takes qcow2, raw; not ova$/, '--format'],
      [{ target: 'kvm', xenMode: 'pvh', size: 'auto' }, /only --target xen/, '--xen-mode'],
      [{ target: 'xen', xenMode: 'hvm2', size: 'auto' }, /unknown Xen mode/, '--xen-mode'],
      [{ target: 'xen', format: 'vhd', size: 4096 * GiB }, /a VHD holds at most 2040 GiB/, '--size'],
    ];
    for (const [req, message, where] of cases) {
      let err: unknown;
      try {
        planTarget(req);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(req)).toMatchObject({ code: 'EUSAGE', where });
      expect((err as Error).message).toMatch(message);
    }
    const azure = planTarget({ target: 'azure', size: 'auto' });
    expect(() => azure.checkSize(100 * MiB + 512)).toThrow(
      'azure: the virtual size must be a whole number of MiB (Azure rejects unaligned VHDs)',
    );
  });

  it('unknown targets and formats list the valid ones', () => {
    expect(() => planTarget({ target: 'openstack' as never, size: 'auto' })).toThrow(
      expect.objectContaining({ hint: 'one of kvm, vmware, virtualbox, hyperv, azure, xen, ec2, gce' }),
    );
    expect(() => planTarget({ target: 'kvm', format: 'iso', size: 'auto' })).toThrow(
      expect.objectContaining({ hint: 'one of raw, qcow2, vmdk, vhd, vhdx, vdi, ova, gce' }),
    );
  });

  it('needs the drivers of each target’s hardware', () => {
    const needs = (t: (typeof TARGETS)[number], xenMode?: string) =>
      planTarget({ target: t, size: 'auto', xenMode }).drivers.map((d) => d.anyOf.join('|'));
    expect(needs('ec2')).toEqual(['nvme', 'ena']);
    expect(needs('xen', 'pvh')).toEqual(['xen_blkfront']);
    expect(needs('xen')).toEqual(['xen_blkfront|ata_piix']);
    expect(needs('azure')).toEqual(['hv_storvsc']);
  });

  it('notes Hyper-V’s generation from the boot mode', () => {
    expect(planTarget({ target: 'hyperv', size: 'auto' }).notes[0]).toMatch(/generation 2/);
    expect(planTarget({ target: 'hyperv', boot: 'bios', size: 'auto' }).notes[0]).toMatch(/generation 1/);
  });
});

describe('EC2 RegisterImage input', () => {
  it('maps boot modes and sizes the root volume in whole GiB', () => {
    expect(ec2BootMode('hybrid')).toBe('uefi-preferred');
    expect(ec2BootMode('bios')).toBe('legacy-bios');
    expect(ec2BootMode('uefi')).toBe('uefi');
    expect(registerImageInput({ name: 'web', boot: 'hybrid', size: 1500 * MiB })).toMatchObject({
      Name: 'web',
      Architecture: 'x86_64',
      BootMode: 'uefi-preferred',
      EnaSupport: true,
      RootDeviceName: '/dev/xvda',
      VirtualizationType: 'hvm',
      BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { VolumeSize: 2 } }],
    });
  });
});
