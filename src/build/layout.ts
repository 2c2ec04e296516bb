// Where everything goes on the disk, in sectors, for each boot mode. Partitions start on MiB boundaries.
import { buildGpt, GPT_TYPE, gptUsableRange, SECTOR } from '../disk/partition/gpt.js';
import { deriveUuid } from '../disk/partition/guid.js';
import { buildMbr } from '../disk/partition/mbr.js';

export type BootMode = 'hybrid' | 'bios' | 'uefi';

export const MiB = 1024 * 1024;
export const BIOS_BOOT_SIZE = MiB;
/** FAT32 needs 33 MiB at least; 64 MiB leaves room for a unified kernel image or a second loader. */
export const ESP_SIZE = 64 * MiB;

export interface DiskLayout {
  boot: BootMode;
  diskSize: number;
  table: 'gpt' | 'mbr';
  /** Byte offsets and sizes. */
  biosBoot?: { offset: number; size: number };
  esp?: { offset: number; size: number };
  root: { offset: number; size: number };
  /** Where core.img goes (LBA) and how much room it has, for BIOS boot. */
  core?: { lba: number; maxBytes: number };
}

/** Bytes the disk needs around a root filesystem of `rootSize` bytes. */
export function overheadBytes(boot: BootMode): number {
  const tail = boot === 'bios' ? 0 : MiB; // GPT backup, rounded to the MiB
  const lead = MiB;
  return lead + (boot === 'hybrid' ? BIOS_BOOT_SIZE : 0) + (boot === 'bios' ? 0 : ESP_SIZE) + tail;
}

export function planLayout(boot: BootMode, diskSize: number): DiskLayout {
  let offset = MiB;
  const layout: Partial<DiskLayout> = { boot, diskSize, table: boot === 'bios' ? 'mbr' : 'gpt' };
  if (boot === 'bios') {
    // MBR: core.img sits in the gap between the MBR and the first partition.
    layout.core = { lba: 1, maxBytes: MiB - SECTOR };
    layout.root = { offset, size: diskSize - offset };
    return layout as DiskLayout;
  }
  if (boot === 'hybrid') {
    layout.biosBoot = { offset, size: BIOS_BOOT_SIZE };
    layout.core = { lba: offset / SECTOR, maxBytes: BIOS_BOOT_SIZE };
    offset += BIOS_BOOT_SIZE;
  }
  layout.esp = { offset, size: ESP_SIZE };
  offset += ESP_SIZE;
  const lastUsable = gptUsableRange(diskSize).last;
  // The root ends on a MiB boundary before the backup GPT.
  const end = Math.floor(((lastUsable + 1) * SECTOR) / MiB) * MiB;
  layout.root = { offset, size: end - offset };
  return layout as DiskLayout;
}

/** The partition table bytes: `head` for offset 0, and for GPT the backup at `tailOffset`. */
export function partitionTable(
  l: DiskLayout,
  seed: string,
  bootCode: Buffer | undefined,
): { head: Buffer; tail?: { offset: number; data: Buffer } } {
  const lba = (b: number) => b / SECTOR;
  if (l.table === 'mbr') {
    const sig = Buffer.from(deriveUuid(seed, 'mbr-signature').replace(/-/g, ''), 'hex').readUInt32LE(0);
    const head = buildMbr({
      diskSize: l.diskSize,
      diskSignature: sig,
      bootCode,
      partitions: [{ type: 0x83, firstLba: lba(l.root.offset), sectors: lba(l.root.size), bootable: true }],
    });
    return { head };
  }
  const part = (type: string, guidName: string, region: { offset: number; size: number }, name: string) => ({
    type,
    guid: deriveUuid(seed, guidName),
    firstLba: lba(region.offset),
    lastLba: lba(region.offset + region.size) - 1,
    name,
  });
  const parts = [];
  if (l.biosBoot) parts.push(part(GPT_TYPE.biosBoot, 'partition-bios-boot', l.biosBoot, 'BIOS boot'));
  if (l.esp) parts.push(part(GPT_TYPE.esp, 'partition-esp', l.esp, 'EFI System'));
  parts.push(part(GPT_TYPE.linuxRootX86_64, 'partition-root', l.root, 'root'));
  const g = buildGpt({
    diskSize: l.diskSize,
    diskGuid: deriveUuid(seed, 'disk'),
    partitions: parts,
    bootCode,
  });
  return { head: g.head, tail: { offset: g.tailOffset, data: g.tail } };
}
