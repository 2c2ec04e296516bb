// CONTRACT STUB (owner: disk-formats helper). Signatures are fixed; bodies to be written.
import type { BlockTarget } from '../disk/target.js';

/** Disk container formats written in-process from the disk writer's blocks. */
export type DiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhd' | 'vhdx' | 'vdi';

/** VMDK: streamOptimized (ESXi/OVA, compressed, read-only for QEMU) or monolithicSparse (Workstation). */
export type VmdkSubformat = 'streamOptimized' | 'monolithicSparse';
/** VHD: fixed (Azure, Hyper-V Gen1; size a whole MiB) or dynamic. */
export type VhdSubformat = 'fixed' | 'dynamic';

export interface DiskTargetOptions {
  subformat?: VmdkSubformat | VhdSubformat | undefined;
  /** Seed every identifier the format carries is derived from (VMDK CID, VHD/VDI UUIDs...). */
  seed: string;
  /** The time stamps the format carries (VHD footer...), seconds since the epoch. */
  timestamp: number;
}

/** A BlockTarget writing `format` into the file `path` (created; a temporary name chosen by the caller). */
export interface DiskTarget extends BlockTarget {
  readonly format: DiskFormat;
  readonly path: string;
}

export async function openDiskTarget(
  _format: DiskFormat,
  _path: string,
  _virtualSize: number,
  _opts: DiskTargetOptions,
): Promise<DiskTarget> {
  throw new Error('not implemented');
}
