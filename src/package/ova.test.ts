import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memberStem, streamOptimizedDataBytes, writeOva } from './ova.js';
import { chooseController, ovfDescriptor } from './ovf.js';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const noQemuImg = has('qemu-img') ? undefined : 'qemu-img is not installed';
const noXmllint = has('xmllint') ? undefined : 'xmllint (libxml2-utils) is not installed';
if (noQemuImg) console.log(`skipping OVA packaging tests: ${noQemuImg}`);
if (noXmllint) console.log(`skipping OVF XML tests: ${noXmllint}`);

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-ova-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1 << 20;
const xpath = (xml: string, expr: string): string =>
  execFileSync('xmllint', ['--xpath', expr, '-'], { input: xml, encoding: 'utf8' }).trim();
/** Namespaces away: local names only, so the XPath below stays short. */
const local = (xml: string) =>
  xml
    .replace(/ xmlns(:\w+)?="[^"]*"/g, '')
    .replace(/<(\/?)\w+:/g, '<$1')
    .replace(/ \w+:(\w+)=/g, ' $1=');

const base = {
  name: 'web & db',
  diskFile: 'web-disk1.vmdk',
  diskFileSize: 12345,
  capacity: 2048 * MiB,
  populatedSize: 300 * MiB,
  firmware: 'bios' as const,
  seed: 'seed',
};

describe.skipIf(noXmllint)('OVF descriptor', () => {
  it('is well-formed XML with References, DiskSection, NetworkSection and one VirtualSystem (VMware)', () => {
    const xml = ovfDescriptor({ ...base, flavour: 'vmware', controller: 'pvscsi', firmware: 'efi' });
    execFileSync('xmllint', ['--noout', '-'], { input: xml });
    const x = local(xml);
    expect(xpath(x, 'string(/Envelope/References/File/@href)')).toBe('web-disk1.vmdk');
    expect(xpath(x, 'string(/Envelope/References/File/@size)')).toBe('12345');
    expect(xpath(x, 'string(/Envelope/DiskSection/Disk/@capacity)')).toBe('2048');
    expect(xpath(x, 'string(/Envelope/DiskSection/Disk/@capacityAllocationUnits)')).toBe('byte * 2^20');
    expect(xpath(x, 'string(/Envelope/DiskSection/Disk/@populatedSize)')).toBe(String(300 * MiB));
    expect(xpath(x, 'string(/Envelope/DiskSection/Disk/@format)')).toMatch(/#streamOptimized$/);
    expect(xpath(x, 'string(/Envelope/NetworkSection/Network/@name)')).toBe('VM Network');
    expect(xpath(x, 'string(/Envelope/VirtualSystem/Name)')).toBe('web & db');
    expect(xpath(x, 'string(/Envelope/VirtualSystem/OperatingSystemSection/@id)')).toBe('101');
    expect(xpath(x, 'string(/Envelope/VirtualSystem/OperatingSystemSection/@osType)')).toBe(
      'other3xLinux64Guest',
    );
    const hw = '/Envelope/VirtualSystem/VirtualHardwareSection';
    expect(xpath(x, `string(${hw}/System/VirtualSystemType)`)).toBe('vmx-13');
    expect(xpath(x, `string(${hw}/Item[ResourceType=6]/ResourceSubType)`)).toBe('VirtualSCSI');
    // The disk hangs off the controller and points at the DiskSection's disk.
    const ctl = xpath(x, `string(${hw}/Item[ResourceType=6]/InstanceID)`);
    expect(xpath(x, `string(${hw}/Item[ResourceType=17]/Parent)`)).toBe(ctl);
    expect(xpath(x, `string(${hw}/Item[ResourceType=17]/HostResource)`)).toBe('ovf:/disk/vmdisk1');
    expect(xpath(x, `string(${hw}/Item[ResourceType=10]/ResourceSubType)`)).toBe('VmxNet3');
    expect(xpath(x, `string(${hw}/Item[ResourceType=10]/Connection)`)).toBe('VM Network');
    expect(xpath(x, `string(${hw}/Config[@key='firmware']/@value)`)).toBe('efi');
    // InstanceIDs are unique; RASD children are in the schema's alphabetical order.
    const ids = xpath(x, `${hw}/Item/InstanceID/text()`).split('\n');
    expect(new Set(ids).size).toBe(ids.length);
    for (const item of xml.split('<Item>').slice(1)) {
      const names = [...item.matchAll(/<rasd:(\w+)>/g)].map((m) => m[1]!);
      expect(names).toEqual([...names].sort());
    }
  });

  it('VirtualBox flavour: SATA AHCI, E1000 on NAT, vbox:OSType, a disk uuid from the seed', () => {
    const xml = ovfDescriptor({ ...base, flavour: 'virtualbox' });
    execFileSync('xmllint', ['--noout', '-'], { input: xml });
    const x = local(xml);
    const hw = '/Envelope/VirtualSystem/VirtualHardwareSection';
    expect(xpath(x, `string(${hw}/System/VirtualSystemType)`)).toBe('virtualbox-2.2');
    expect(xpath(x, `string(${hw}/Item[ResourceType=20]/ResourceSubType)`)).toBe('AHCI');
    expect(xpath(x, `string(${hw}/Item[ResourceType=10]/ResourceSubType)`)).toBe('E1000');
    expect(xpath(x, 'string(/Envelope/VirtualSystem/OperatingSystemSection/OSType)')).toBe('Linux26_64');
    const uuid = xpath(x, 'string(/Envelope/DiskSection/Disk/@uuid)');
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/);
    expect(ovfDescriptor({ ...base, flavour: 'virtualbox' })).toBe(xml);
    expect(ovfDescriptor({ ...base, flavour: 'virtualbox', seed: 'other' })).not.toBe(xml);
  });
});

describe('controller choice', () => {
  it('takes the best controller the initramfs has a driver for, else LSI Logic (not found)', () => {
    expect(chooseController((d) => ['ahci', 'vmw_pvscsi'].includes(d))).toEqual({
      controller: 'pvscsi',
      found: true,
    });
    expect(chooseController((d) => d === 'ata_piix')).toEqual({ controller: 'ide', found: true });
    expect(chooseController(() => false)).toEqual({ controller: 'lsilogic', found: false });
  });

  it('makes a safe member stem', () => {
    expect(memberStem('my vm/../x')).toBe('my-vm-..-x');
    expect(memberStem('...')).toBe('cloudlet');
  });
});

describe.skipIf(noQemuImg)('OVA', () => {
  const vmdk = join(dir, 'disk.vmdk');
  const raw = join(dir, 'disk.raw');
  beforeAll(async () => {
    const fh = await open(raw, 'w');
    await fh.truncate(64 * MiB);
    for (const at of [0, 5 * MiB, 40 * MiB]) await fh.write(Buffer.alloc(100 * 1024, 7), 0, 100 * 1024, at);
    await fh.close();
    execFileSync('qemu-img', [
      'convert',
      '-f',
      'raw',
      '-O',
      'vmdk',
      '-o',
      'subformat=streamOptimized',
      raw,
      vmdk,
    ]);
  });

  it('counts the data grains of a streamOptimized VMDK', async () => {
    // Each 100 KiB run touches two 64 KiB grains.
    expect(await streamOptimizedDataBytes(vmdk)).toBe(6 * 64 * 1024);
  });

  it('holds NAME.ovf, NAME.mf, NAME-disk1.vmdk in that order; the .mf SHA-256s match', async () => {
    const out = join(dir, 'vm.ova');
    const r = await writeOva(vmdk, out, {
      flavour: 'vmware',
      stem: 'vm',
      name: 'vm',
      capacity: 64 * MiB,
      firmware: 'bios',
      seed: 's',
      mtime: 1700000000,
    });
    expect(r.members).toEqual(['vm.ovf', 'vm.mf', 'vm-disk1.vmdk']);
    expect(execFileSync('tar', ['-tf', out], { encoding: 'utf8' })).toBe('vm.ovf\nvm.mf\nvm-disk1.vmdk\n');
    // Plain ustar, as OVF 1.0 requires.
    expect(readFileSync(out).toString('latin1', 257, 265)).toBe('ustar\u000000');
    const x = join(dir, 'x');
    mkdirSync(x);
    execFileSync('tar', ['-xf', out, '-C', x]);
    const mf = readFileSync(join(x, 'vm.mf'), 'utf8');
    for (const name of ['vm.ovf', 'vm-disk1.vmdk']) {
      const sum = createHash('sha256')
        .update(readFileSync(join(x, name)))
        .digest('hex');
      expect(mf).toContain(`SHA256(${name})= ${sum}\n`);
    }
    expect(mf.split('\n').filter(Boolean)).toHaveLength(2);
    expect(readFileSync(join(x, 'vm-disk1.vmdk')).equals(readFileSync(vmdk))).toBe(true);
    const ovf = readFileSync(join(x, 'vm.ovf'), 'utf8');
    expect(ovf).toContain(`ovf:size="${readFileSync(vmdk).length}"`);
    expect(ovf).toContain(`ovf:populatedSize="${6 * 64 * 1024}"`);
    // qemu-img reads the disk inside.
    execFileSync('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', join(x, 'vm-disk1.vmdk'), raw]);
  });

  it('is reproducible and refuses an existing output without force', async () => {
    const opts = {
      flavour: 'virtualbox' as const,
      stem: 'a',
      name: 'a',
      capacity: 64 * MiB,
      firmware: 'bios' as const,
      seed: 's',
      mtime: 1,
    };
    await writeOva(vmdk, join(dir, 'a1.ova'), opts);
    await writeOva(vmdk, join(dir, 'a2.ova'), opts);
    expect(readFileSync(join(dir, 'a1.ova')).equals(readFileSync(join(dir, 'a2.ova')))).toBe(true);
    writeFileSync(join(dir, 'a3.ova'), 'x');
    await expect(writeOva(vmdk, join(dir, 'a3.ova'), opts)).rejects.toMatchObject({ code: 'EEXIST' });
  });
});
