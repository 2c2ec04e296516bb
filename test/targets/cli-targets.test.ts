// End-to-end tests of `cloudlets build --target ...`: the fixture image (scripts/fixture) built for GCE,
// VMware, Xen PVH, Azure and EC2, the outputs checked by GNU tar, qemu-img and small parsers, plus the
// refusals (unknown names, target rules, existing outputs, interrupts) and reproducibility.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootDisk, bootSkipReason, ensureFixture } from '../boot/helpers.js';
import { CLI, cli, tempDir } from '../helpers.js';
import { parseXlCfg } from './xlcfg.js';

const skip =
  bootSkipReason() ?? (spawnSync('sh', ['-c', 'command -v qemu-img']).status ? 'no qemu-img' : undefined);
if (skip) console.log(`target tests skipped: ${skip}`);
const SLOW = 300_000;
const EPOCH = '1700000000';
const MiB = 1 << 20;
const GiB = 1 << 30;
const tmp = tempDir('cloudlets-targets-');
let fixture = '';
let n = 0;

beforeAll(() => {
  if (!skip) fixture = ensureFixture();
}, 600_000);
afterAll(() => tmp.remove());

/** A fresh empty directory for one build. */
function freshDir(): string {
  const d = join(tmp.path, `t${n++}`);
  mkdirSync(d);
  return d;
}
const build = (args: string[]) => cli(['build', fixture, ...args], { env: { SOURCE_DATE_EPOCH: EPOCH } });
const sh = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe.skipIf(skip)('cloudlets build --target', () => {
  it(
    'gce: disk.raw, a whole GiB, alone in an oldgnu sparse tar.gz that restores the raw disk, and boots',
    async () => {
      const d = freshDir();
      const r = build(['--target', 'gce', '-o', join(d, 'image.tar.gz'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const summary = JSON.parse(r.stdout) as { size: number; format: string; files: string[] };
      expect(summary.format).toBe('gce');
      expect(summary.size % GiB).toBe(0);
      expect(readdirSync(d)).toEqual(['image.tar.gz']);
      const list = sh('tar', ['-tvzf', join(d, 'image.tar.gz')])
        .trim()
        .split('\n');
      expect(list).toHaveLength(1);
      expect(list[0]).toMatch(new RegExp(`^-rw-r--r-- 0/0 +${summary.size} .* disk\\.raw$`));
      // The member is GNU's oldgnu sparse type 'S'.
      const head = spawnSync('gzip', ['-dc', join(d, 'image.tar.gz')]).stdout.subarray(0, 512);
      expect(String.fromCharCode(head[156]!)).toBe('S');
      expect(head.toString('latin1', 257, 265)).toBe('ustar  \u0000');
      // The raw disk of the same build, for comparison, and the archive's content restored.
      const raw = join(d, 'same.img');
      expect(build(['--format', 'raw', '--size', `${summary.size / MiB}M`, '-o', raw]).code).toBe(0);
      const x = join(d, 'x');
      mkdirSync(x);
      sh('tar', ['-xzSf', join(d, 'image.tar.gz'), '-C', x]);
      sh('cmp', [join(x, 'disk.raw'), raw]);
      const boot = await bootDisk(join(x, 'disk.raw'), 'bios', 120_000);
      if (!boot.output.includes('CLOUDLETS-BOOT-MARKER')) console.log(boot.output.slice(-2000));
      expect(boot.output).toContain('CLOUDLETS-BOOT-MARKER');
    },
    SLOW,
  );

  it(
    'vmware: an OVA with .ovf, .mf, streamOptimized VMDK in order, hashes that match, the disk inside',
    () => {
      const d = freshDir();
      const r = build(['--target', 'vmware', '-o', join(d, 'web.ova')]);
      expect(r.code, r.stderr).toBe(0);
      expect(readdirSync(d)).toEqual(['web.ova']);
      expect(sh('tar', ['-tf', join(d, 'web.ova')])).toBe('web.ovf\nweb.mf\nweb-disk1.vmdk\n');
      const x = join(d, 'x');
      mkdirSync(x);
      sh('tar', ['-xf', join(d, 'web.ova'), '-C', x]);
      const mf = readFileSync(join(x, 'web.mf'), 'utf8');
      expect(mf).toBe(
        `SHA256(web.ovf)= ${sha256(join(x, 'web.ovf'))}\nSHA256(web-disk1.vmdk)= ${sha256(join(x, 'web-disk1.vmdk'))}\n`,
      );
      const ovf = readFileSync(join(x, 'web.ovf'), 'utf8');
      expect(ovf).toContain('<vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>');
      expect(ovf).toContain('vmw:osType="other3xLinux64Guest"');
      const info = JSON.parse(sh('qemu-img', ['info', '--output=json', join(x, 'web-disk1.vmdk')])) as {
        format: string;
        'virtual-size': number;
        'format-specific': { data: { 'create-type': string } };
      };
      expect(info.format).toBe('vmdk');
      expect(info['format-specific'].data['create-type']).toBe('streamOptimized');
      expect(ovf).toContain(`ovf:capacity="${info['virtual-size'] / MiB}"`);
      // The disk's own descriptor names the controller the OVF declares (a SCSI one: lsilogic).
      const descriptor = readFileSync(join(x, 'web-disk1.vmdk'))
        .subarray(512, 512 * 21)
        .toString('latin1');
      const scsi = /ResourceSubType>(lsilogic|VirtualSCSI)</.test(ovf);
      expect(descriptor).toContain(`ddb.adapterType = "${scsi ? 'lsilogic' : 'ide'}"`);
      // Same image, same epoch: the raw disk holds what the VMDK holds.
      const raw = join(d, 'same.img');
      expect(build(['--format', 'raw', '-o', raw]).code).toBe(0);
      sh('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', join(x, 'web-disk1.vmdk'), raw]);
    },
    SLOW,
  );

  it(
    'xen --xen-mode pvh: the disk, the kernel and initrd of the image, and an xl.cfg booting them',
    () => {
      const d = freshDir();
      const r = build(['--target', 'xen', '--xen-mode', 'pvh', '-o', join(d, 'vm.img'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as { rootFsUuid: string; kernel: string; initrd: string };
      expect(readdirSync(d).sort()).toEqual(['vm.img', 'vm.initrd', 'vm.vmlinuz', 'vm.xl.cfg']);
      expect(readFileSync(join(d, 'vm.vmlinuz')).equals(readFileSync(join(fixture, s.kernel)))).toBe(true);
      expect(readFileSync(join(d, 'vm.initrd')).equals(readFileSync(join(fixture, s.initrd)))).toBe(true);
      const cfg = parseXlCfg(readFileSync(join(d, 'vm.xl.cfg'), 'utf8'));
      expect(cfg).toMatchObject({
        type: 'pvh',
        kernel: join(d, 'vm.vmlinuz'),
        ramdisk: join(d, 'vm.initrd'),
        disk: [`format=raw, vdev=xvda, access=rw, target=${join(d, 'vm.img')}`],
      });
      expect(cfg.extra).toMatch(new RegExp(`^root=UUID=${s.rootFsUuid} ro console=hvc0`));
      expect(r.stderr).toMatch(/xen: the initramfs .* has no xen_blkfront module/);
    },
    SLOW,
  );

  it(
    'azure: a fixed VHD, BIOS by default, whose virtual size is a whole MiB',
    () => {
      const d = freshDir();
      const r = build(['--target', 'azure', '-o', join(d, 'a.vhd'), '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ boot: 'bios', format: 'vhd', subformat: 'fixed' });
      const info = JSON.parse(sh('qemu-img', ['info', '-f', 'vpc', '--output=json', join(d, 'a.vhd')])) as {
        'virtual-size': number;
      };
      expect(info['virtual-size'] % MiB).toBe(0);
      // A fixed VHD: the data, then the 512-byte footer ("conectix").
      const file = readFileSync(join(d, 'a.vhd'));
      expect(file.length).toBe(info['virtual-size'] + 512);
      expect(file.toString('latin1', file.length - 512, file.length - 504)).toBe('conectix');
    },
    SLOW,
  );

  it(
    'kvm: qcow2 that qemu-img checks clean; hyperv: VHDX, generation 2 for a hybrid disk',
    () => {
      const d = freshDir();
      expect(build(['--target', 'kvm', '-o', join(d, 'k.qcow2')]).code).toBe(0);
      sh('qemu-img', ['check', '-f', 'qcow2', join(d, 'k.qcow2')]);
      const h = build(['--target', 'hyperv', '-o', join(d, 'h.vhdx')]);
      expect(h.code, h.stderr).toBe(0);
      expect(h.stderr).toMatch(/Hyper-V generation 2/);
      expect(JSON.parse(sh('qemu-img', ['info', '--output=json', join(d, 'h.vhdx')])).format).toBe('vhdx');
    },
    SLOW,
  );

  it(
    'ec2: the raw disk and a RegisterImage input; NVMe and ENA missing from the initramfs are warned about',
    () => {
      const d = freshDir();
      const r = build(['--target', 'ec2', '-o', join(d, 'ami.raw')]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/ec2: the initramfs .* has no nvme module/);
      expect(r.stderr).toMatch(/ec2: the initramfs .* has no ena module/);
      const input = JSON.parse(readFileSync(join(d, 'ami.register-image.json'), 'utf8'));
      expect(input).toMatchObject({
        Architecture: 'x86_64',
        BootMode: 'uefi-preferred',
        EnaSupport: true,
        RootDeviceName: '/dev/xvda',
        VirtualizationType: 'hvm',
      });
    },
    SLOW,
  );

  it(
    'reproducible: two OVA builds and two GCE builds are byte-identical',
    () => {
      for (const [target, name] of [
        ['vmware', 'r.ova'],
        ['gce', 'r.tar.gz'],
      ] as const) {
        const [a, b] = [freshDir(), freshDir()];
        expect(build(['--target', target, '-o', join(a, name)]).code).toBe(0);
        expect(build(['--target', target, '-o', join(b, name)]).code).toBe(0);
        expect(sha256(join(a, name))).toBe(sha256(join(b, name)));
      }
    },
    SLOW,
  );

  it('refuses unknown targets and formats, listing the valid ones', () => {
    const t = cli(['build', fixture, '--target', 'openstack', '-o', join(tmp.path, 'x')]);
    expect(t.code).not.toBe(0);
    expect(t.stderr).toMatch(/kvm, vmware, virtualbox, hyperv, azure, xen, ec2, gce/);
    const f = cli(['build', fixture, '--format', 'iso', '-o', join(tmp.path, 'x')]);
    expect(f.code).not.toBe(0);
    expect(f.stderr).toMatch(/raw, qcow2, vmdk, vhd, vhdx, vdi, ova, gce/);
  });

  it('a configuration the target rejects fails before writing, naming the rule', () => {
    const d = freshDir();
    const cases: [string[], RegExp][] = [
      [['--target', 'gce', '--size', '1536M'], /gce: the disk size must be a whole number of GiB/],
      [['--target', 'azure', '--format', 'vhdx'], /azure: takes vhd \(fixed\); not vhdx/],
      [['--target', 'azure', '--subformat', 'dynamic'], /azure: a vhd disk must be fixed/],
      [
        ['--target', 'hyperv', '--format', 'vhd', '--boot', 'uefi'],
        /hyperv: a generation 2 \(UEFI\) VM cannot boot from a VHD/,
      ],
      [['--target', 'kvm', '--xen-mode', 'pvh'], /only --target xen has a mode/],
    ];
    for (const [args, message] of cases) {
      const r = build([...args, '-o', join(d, 'out')]);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(message);
    }
    expect(readdirSync(d)).toEqual([]);
  });

  it(
    'refuses existing outputs (the disk or a file beside it) without --force, and replaces them with it',
    () => {
      const d = freshDir();
      writeFileSync(join(d, 'vm.xl.cfg'), 'mine');
      const r = build(['--target', 'xen', '-o', join(d, 'vm.img')]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/vm\.xl\.cfg: the output exists/);
      expect(readdirSync(d)).toEqual(['vm.xl.cfg']);
      expect(build(['--target', 'xen', '-o', join(d, 'vm.img'), '--force']).code).toBe(0);
      expect(readFileSync(join(d, 'vm.xl.cfg'), 'utf8')).toMatch(/type = "hvm"/);
    },
    SLOW,
  );

  it(
    'an interrupted build leaves nothing behind',
    async () => {
      const d = freshDir();
      const child = spawn(
        process.execPath,
        [CLI, 'build', fixture, '--target', 'gce', '-o', join(d, 'i.tar.gz')],
        {
          env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH },
          stdio: 'ignore',
        },
      );
      // Interrupt once the build has started writing (a temporary file appears).
      const started = Date.now();
      while (!readdirSync(d).some((f) => f.includes('.cloudlets-')) && Date.now() - started < 60_000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      child.kill('SIGINT');
      const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      expect(code).not.toBe(0);
      expect(readdirSync(d)).toEqual([]);
      expect(existsSync(join(d, 'i.tar.gz'))).toBe(false);
    },
    SLOW,
  );
});
