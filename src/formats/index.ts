// Disk container formats written in-process from the disk writer's blocks: each is a BlockTarget, so
// buildDisk writes a qcow2, VMDK, VHD, VHDX or VDI as directly as a raw file, and regions never written
// cost nothing. One module per format; this file only chooses.
import { openRawTarget } from '../disk/raw-target.js';
import type { BlockTarget } from '../disk/target.js';
import { CloudletsError } from '../errors.js';
import { openQcow2Target } from './qcow2.js';
import { openVdiTarget } from './vdi.js';
import { openVhdTarget } from './vhd.js';
import { openVhdxTarget } from './vhdx.js';
import { openVmdkTarget } from './vmdk.js';

/** Disk container formats written in-process from the disk writer's blocks. */
export type DiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'vdi';
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2', 'vmdk', 'vhd', 'vhdx', 'vdi'];

/** VMDK: streamOptimized (ESXi/OVA, compressed, read-only for QEMU) or monolithicSparse (Workstation). */
export type VmdkSubformat = 'streamOptimized' | 'monolithicSparse';
/** VHD: fixed (Azure, Hyper-V Gen1; size a whole MiB) or dynamic. */
export type VhdSubformat = 'fixed' | 'dynamic';

/** The subformats each format takes; the first is the default. */
export const SUBFORMATS: Readonly<Partial<Record<DiskFormat, readonly string[]>>> = {
  vmdk: ['streamOptimized', 'monolithicSparse'],
  vhd: ['fixed', 'dynamic'],
};

/** The `ddb.adapterType` values VMware defines. */
export type VmdkAdapter = 'ide' | 'buslogic' | 'lsilogic' | 'legacyESX';

export interface DiskTargetOptions {
  subformat?: VmdkSubformat | VhdSubformat | undefined;
  /** Seed every identifier the format carries is derived from (VMDK CID, VHD/VDI UUIDs...). */
  seed: string;
  /** The time stamps the format carries (VHD footer...), seconds since the epoch. */
  timestamp: number;
  /**
   * The file name the disk will finally have, for formats that name themselves (the VMDK descriptor's
   * extent line); default the base name of `path`.
   */
  name?: string | undefined;
  /**
   * VMDK: the controller the descriptor names (`ddb.adapterType`); it should match the VM's, e.g. the
   * controller an OVF declares. Default `ide`.
   */
  vmdkAdapter?: VmdkAdapter | undefined;
  /** Checked between grains while a VMDK streamOptimized is compressed at finish(). */
  signal?: AbortSignal | undefined;
}

/** A BlockTarget writing `format` into the file `path` (created; a temporary name chosen by the caller). */
export interface DiskTarget extends BlockTarget {
  readonly format: DiskFormat;
  readonly path: string;
  /**
   * Gives up: closes the file without finishing it and removes any scratch file (the VMDK stream's
   * spill file). The caller removes `path`. Safe after finish() and twice.
   */
  abort(): Promise<void>;
}

export async function openDiskTarget(
  format: DiskFormat,
  path: string,
  virtualSize: number,
  opts: DiskTargetOptions,
): Promise<DiskTarget> {
  if (!Number.isSafeInteger(virtualSize) || virtualSize <= 0 || virtualSize % 512 !== 0) {
    throw new CloudletsError('EUSAGE', `bad disk size ${virtualSize}: a positive multiple of 512 bytes`, {
      where: path,
    });
  }
  checkSubformat(format, opts.subformat);
  switch (format) {
    case 'raw':
      return rawDiskTarget(path, virtualSize);
    case 'qcow2':
      return openQcow2Target(path, virtualSize, opts);
    case 'vmdk':
      return openVmdkTarget(path, virtualSize, opts);
    case 'vhd':
      return openVhdTarget(path, virtualSize, opts);
    case 'vhdx':
      return openVhdxTarget(path, virtualSize, opts);
    case 'vdi':
      return openVdiTarget(path, virtualSize, opts);
    default:
      throw unknownFormat(format);
  }
}

/** The error for a format name that is none of ours, listing the valid ones. */
export function unknownFormat(format: string): CloudletsError {
  return new CloudletsError('EUSAGE', `unknown disk format ${JSON.stringify(format)}`, {
    where: '--format',
    hint: `one of ${DISK_FORMATS.join(', ')}`,
  });
}

/** Refuses a subformat the format does not have (or any subformat for a format without them). */
export function checkSubformat(format: DiskFormat, subformat: string | undefined): void {
  if (subformat === undefined) return;
  const valid = SUBFORMATS[format];
  if (!valid) {
    throw new CloudletsError('EUSAGE', `format ${format} has no subformats (got ${subformat})`, {
      where: '--subformat',
      hint: 'subformats exist for vmdk (streamOptimized, monolithicSparse) and vhd (fixed, dynamic)',
    });
  }
  if (!valid.includes(subformat)) {
    throw new CloudletsError('EUSAGE', `unknown ${format} subformat ${JSON.stringify(subformat)}`, {
      where: '--subformat',
      hint: `one of ${valid.join(', ')}`,
    });
  }
}

async function rawDiskTarget(path: string, size: number): Promise<DiskTarget> {
  const raw = await openRawTarget(path, size);
  return {
    format: 'raw',
    path,
    size,
    write: (offset, data) => raw.write(offset, data),
    finish: () => raw.finish(),
    // The raw target has no separate abort: finishing it only closes the file.
    abort: () => raw.finish().catch(() => {}),
  };
}
