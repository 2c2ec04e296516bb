// Target profiles: for each place a VM runs, the container it takes, the size rounding and boot mode it
// needs, the drivers its virtual hardware needs in the initramfs, and the rules it enforces — checked
// before anything is written, each error quoting the rule (../shared/reference/targets.md).
import type { BootMode } from '../build/index.js';
import { CloudletsError } from '../errors.js';
import type { DiskFormat } from '../formats/index.js';
import { XEN_MODES, type XenMode } from './xen.js';

export type TargetName = 'kvm' | 'vmware' | 'virtualbox' | 'hyperv' | 'azure' | 'xen' | 'ec2' | 'gce';
export const TARGETS: readonly TargetName[] = [
  'kvm',
  'vmware',
  'virtualbox',
  'hyperv',
  'azure',
  'xen',
  'ec2',
  'gce',
];

/** Packaged outputs: a disk inside an archive with its description. */
export type PackageFormat = 'ova' | 'gce';
export type OutputFormat = DiskFormat | PackageFormat;
export const OUTPUT_FORMATS: readonly OutputFormat[] = [
  'raw',
  'qcow2',
  'vmdk',
  'vhd',
  'vhdx',
  'vdi',
  'ova',
  'gce',
];

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The VHD format's own limit (its footer's CHS geometry and 32-bit block tables): 2040 GiB. */
const VHD_MAX = 2040 * GiB;

/** Storage or network drivers a target's virtual hardware needs; any one of `anyOf` will do. */
export interface DriverNeed {
  anyOf: string[];
  /** What it drives, for the warning: "the NVMe disks of Nitro instances". */
  what: string;
}

export interface TargetRequest {
  target?: TargetName | undefined;
  /** `--format`; undefined: the target's default. */
  format?: string | undefined;
  subformat?: string | undefined;
  /** `--boot`; undefined: the target's default. */
  boot?: BootMode | undefined;
  size: number | 'auto';
  xenMode?: string | undefined;
}

export interface TargetPlan {
  target: TargetName;
  format: OutputFormat;
  /** The container buildDisk writes (an OVA holds a streamOptimized VMDK, a GCE archive a raw disk). */
  diskFormat: DiskFormat;
  subformat: string | undefined;
  boot: BootMode;
  xenMode: XenMode | undefined;
  /** Rounds `--size auto` up to what the target requires. */
  roundAutoSize: (size: number) => number;
  /** Throws, quoting the rule, when the planned disk size is one the target rejects. */
  checkSize: (size: number) => void;
  drivers: DriverNeed[];
  /** Facts for the summary: "Hyper-V generation 2 (UEFI)". */
  notes: string[];
}

const roundUp = (n: number, unit: number) => Math.ceil(n / unit) * unit;

/** A rule of the target, quoted: `azure: only a fixed VHD is accepted (...)`. */
function rule(target: string, text: string, where: string, hint?: string): CloudletsError {
  return new CloudletsError('EUSAGE', `${target}: ${text}`, hint === undefined ? { where } : { where, hint });
}

interface Profile {
  /** Formats the target takes, the default first; each with its allowed subformats, the default first. */
  formats: Partial<Record<OutputFormat, string[]>>;
  boot: BootMode;
  drivers: DriverNeed[];
  /** Size unit the target requires (a whole number of it). */
  sizeUnit?: { bytes: number; rule: string };
  /** Extra rules on the chosen format and boot mode. */
  check?: (p: {
    format: OutputFormat;
    subformat: string | undefined;
    boot: BootMode;
    xenMode: XenMode | undefined;
  }) => void;
  notes?: (p: { format: OutputFormat; boot: BootMode; xenMode: XenMode | undefined }) => string[];
}

const VIRTIO_BLK: DriverNeed = { anyOf: ['virtio_blk'], what: 'virtio disks' };

const PROFILES: Record<TargetName, Profile> = {
  kvm: {
    formats: { qcow2: [], raw: [] },
    boot: 'hybrid',
    drivers: [VIRTIO_BLK],
  },
  vmware: {
    // ESXi imports an OVA whose VMDK is streamOptimized; Workstation/Fusion open a monolithicSparse VMDK.
    formats: { ova: [], vmdk: ['monolithicSparse', 'streamOptimized'] },
    boot: 'hybrid',
    // The OVA's controller is chosen from what the initramfs has (src/package/ovf.ts).
    drivers: [],
    notes: ({ boot }) => [`firmware ${boot === 'uefi' ? 'EFI' : 'BIOS'}`],
  },
  virtualbox: {
    formats: { ova: [], vdi: [], vmdk: ['monolithicSparse', 'streamOptimized'], vhd: ['dynamic', 'fixed'] },
    boot: 'hybrid',
    drivers: [{ anyOf: ['ahci'], what: "VirtualBox's SATA (AHCI) controller" }],
    check: ({ format, boot }) => {
      if (format === 'ova' && boot === 'uefi') {
        throw rule(
          'virtualbox',
          'an OVA without VirtualBox machine settings is imported with BIOS firmware, which cannot boot a UEFI-only disk',
          '--boot',
          'use --boot hybrid (boots under BIOS and UEFI) or --format vdi and enable EFI in the VM',
        );
      }
    },
  },
  hyperv: {
    formats: { vhdx: [], vhd: ['dynamic', 'fixed'] },
    boot: 'hybrid',
    drivers: [{ anyOf: ['hv_storvsc'], what: "Hyper-V's synthetic SCSI disks" }],
    check: ({ format, boot }) => {
      if (format === 'vhd' && boot === 'uefi') {
        throw rule(
          'hyperv',
          'a generation 2 (UEFI) VM cannot boot from a VHD; it needs a VHDX',
          '--format',
          'use --format vhdx, or --boot bios for a generation 1 VM',
        );
      }
    },
    notes: ({ format, boot }) => [
      format === 'vhd' || boot === 'bios'
        ? 'Hyper-V generation 1 (BIOS)'
        : 'Hyper-V generation 2 (UEFI; turn Secure Boot off: the disk’s GRUB is not signed)',
    ],
  },
  azure: {
    formats: { vhd: ['fixed'] },
    boot: 'bios',
    drivers: [{ anyOf: ['hv_storvsc'], what: "Azure's (Hyper-V) synthetic SCSI disks" }],
    sizeUnit: {
      bytes: MiB,
      rule: 'the virtual size must be a whole number of MiB (Azure rejects unaligned VHDs)',
    },
    notes: ({ boot }) => [boot === 'uefi' ? 'Azure generation 2 VM (UEFI)' : 'Azure generation 1 VM (BIOS)'],
  },
  xen: {
    formats: { raw: [], qcow2: [], vhd: ['dynamic', 'fixed'] },
    boot: 'hybrid',
    drivers: [],
    notes: ({ xenMode }) => [`Xen ${(xenMode ?? 'hvm').toUpperCase()} guest`],
  },
  ec2: {
    // ImportSnapshot takes raw, VHD/VHDX and VMDK (stream-optimized only).
    formats: { raw: [], vmdk: ['streamOptimized'], vhd: ['dynamic', 'fixed'] },
    boot: 'hybrid',
    drivers: [
      { anyOf: ['nvme'], what: 'the NVMe EBS volumes of Nitro instances' },
      { anyOf: ['ena'], what: 'the ENA network adapter of Nitro instances' },
    ],
  },
  gce: {
    formats: { gce: [] },
    boot: 'hybrid',
    drivers: [{ anyOf: ['virtio_scsi', 'nvme'], what: "Compute Engine's virtio-SCSI or NVMe disks" }],
    sizeUnit: {
      bytes: GiB,
      rule: 'the disk size must be a whole number of GiB (Compute Engine sizes image disks in whole GB)',
    },
    notes: ({ boot }) =>
      boot === 'uefi' ? ['UEFI only: create the image with --guest-os-features=UEFI_COMPATIBLE'] : [],
  },
};

/** The formats and subformats one target takes, for messages: `ova, vmdk (monolithicSparse, streamOptimized)`. */
function describeFormats(p: Profile): string {
  return Object.entries(p.formats)
    .map(([f, subs]) => (subs && subs.length > 0 ? `${f} (${subs.join(', ')})` : f))
    .join(', ');
}

export function isTarget(name: string): name is TargetName {
  return (TARGETS as readonly string[]).includes(name);
}

/**
 * Chooses format, subformat, boot mode and size rounding for a target (or for `--format ova|gce`
 * without one: VMware's OVA, the GCE archive), refusing combinations the target rejects.
 */
export function planTarget(req: TargetRequest): TargetPlan {
  let target: TargetName;
  if (req.target !== undefined) {
    if (!isTarget(req.target)) {
      throw new CloudletsError('EUSAGE', `unknown target ${req.target}`, {
        where: '--target',
        hint: `one of ${TARGETS.join(', ')}`,
      });
    }
    target = req.target;
  } else if (req.format === 'ova') target = 'vmware';
  else if (req.format === 'gce') target = 'gce';
  else throw new Error('internal error: planTarget without a target or a packaged format');
  const profile = PROFILES[target];

  if (req.format !== undefined && !(OUTPUT_FORMATS as readonly string[]).includes(req.format)) {
    throw new CloudletsError('EUSAGE', `unknown format ${req.format}`, {
      where: '--format',
      hint: `one of ${OUTPUT_FORMATS.join(', ')}`,
    });
  }
  const formats = Object.keys(profile.formats) as OutputFormat[];
  const format = (req.format ?? formats[0]!) as OutputFormat;
  const subformats = profile.formats[format];
  if (!subformats) {
    throw rule(
      target,
      `takes ${describeFormats(profile)}; not ${format}`,
      '--format',
      `use --format ${formats[0]}`,
    );
  }
  let subformat = req.subformat;
  if (subformat !== undefined && !subformats.includes(subformat)) {
    throw rule(
      target,
      subformats.length === 0
        ? `${format} has no subformat`
        : `a ${format} disk must be ${subformats.join(' or ')}; not ${subformat}`,
      '--subformat',
    );
  }
  subformat ??= subformats[0];

  let xenMode: XenMode | undefined;
  if (req.xenMode !== undefined) {
    if (target !== 'xen')
      throw new CloudletsError('EUSAGE', 'only --target xen has a mode', { where: '--xen-mode' });
    if (!(XEN_MODES as readonly string[]).includes(req.xenMode)) {
      throw new CloudletsError('EUSAGE', `unknown Xen mode ${req.xenMode}`, {
        where: '--xen-mode',
        hint: XEN_MODES.join(', '),
      });
    }
    xenMode = req.xenMode as XenMode;
  } else if (target === 'xen') xenMode = 'hvm';

  const boot = req.boot ?? profile.boot;
  profile.check?.({ format, subformat, boot, xenMode });

  // The container buildDisk writes: the OVA's VMDK must be streamOptimized (ESXi rejects the others).
  const diskFormat: DiskFormat = format === 'ova' ? 'vmdk' : format === 'gce' ? 'raw' : format;
  if (format === 'ova') subformat = 'streamOptimized';

  const unit = profile.sizeUnit;
  const isVhd = diskFormat === 'vhd';
  const checkSize = (size: number) => {
    if (unit && size % unit.bytes !== 0) {
      throw rule(target, unit.rule, '--size', `use a multiple of ${unit.bytes / MiB} MiB, or --size auto`);
    }
    if (isVhd && size > VHD_MAX) {
      throw rule(
        target,
        'a VHD holds at most 2040 GiB',
        '--size',
        'use a smaller --size, or VHDX where the target takes it',
      );
    }
  };
  if (req.size !== 'auto') checkSize(req.size);

  const drivers = [...profile.drivers];
  if (target === 'xen') {
    // PV and PVH have no emulated disk: only blkfront. HVM also boots from the emulated IDE disk.
    drivers.push(
      xenMode === 'hvm'
        ? { anyOf: ['xen_blkfront', 'ata_piix'], what: "Xen's disks (blkfront, or the emulated IDE)" }
        : { anyOf: ['xen_blkfront'], what: "Xen's paravirtual disks (blkfront)" },
    );
  }

  return {
    target,
    format,
    diskFormat,
    subformat,
    boot,
    xenMode,
    roundAutoSize: (size) => (unit ? roundUp(size, unit.bytes) : size),
    checkSize,
    drivers,
    notes: profile.notes?.({ format, boot, xenMode }) ?? [],
  };
}
