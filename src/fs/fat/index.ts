// A small FAT32 writer for EFI system partitions: a handful of files written once, in memory, into a
// block target. Hand-written (no dependency) because the ESP holds a few files and the job is a few
// hundred lines; mkfs.fat + mtools would add two host programs and lose reproducibility by default.
// References: Microsoft "FAT32 File System Specification" (1.03), the long-name section included.
import type { BlockTarget } from '../../disk/target.js';
import { CloudletsError } from '../../errors.js';
import { assignShortNames, lfnEntries, type ShortName } from './names.js';

const SECTOR = 512;
const RESERVED_SECTORS = 32;
const FAT_COUNT = 2;
const DIR_ENTRY = 32;
const EOC = 0x0fffffff;
/** FAT32 needs at least this many clusters, or readers take the volume for FAT16. */
const MIN_FAT32_CLUSTERS = 65525;

export interface FatFile {
  /** Absolute path with `/` separators: `/EFI/BOOT/BOOTX64.EFI`. Parent directories are created. */
  path: string;
  data: Buffer;
}

export interface FatOptions {
  /** Volume size in bytes (a multiple of 512); at least 33 MiB for FAT32 with 512-byte clusters. */
  size: number;
  /** The 32-bit volume serial number (derive it from the build seed for reproducible output). */
  volumeId: number;
  /** Up to 11 characters, upper-cased; default `NO NAME`. */
  label?: string;
  /** Time stamped on every file and directory, seconds since the epoch (clamped to 1980-2107). */
  mtime: number;
  /** Sectors before the volume on its disk (the partition's first LBA); recorded in the BPB. */
  hiddenSectors?: number;
}

interface Node {
  name: string;
  short: ShortName | undefined;
  dir: boolean;
  children: Node[];
  data: Buffer;
  firstCluster: number;
  clusters: number;
}

/** The FAT32 geometry for a volume size: sectors per cluster, FAT size, cluster count. */
export function fat32Geometry(size: number): {
  sectorsPerCluster: number;
  fatSectors: number;
  clusters: number;
} {
  const total = Math.floor(size / SECTOR);
  // Microsoft's table: 512-byte clusters up to 260 MiB, 4 KiB up to 8 GiB, then larger.
  const spc = total <= 532480 ? 1 : total <= 16777216 ? 8 : total <= 33554432 ? 16 : 32;
  let fatSectors = 1;
  for (;;) {
    const clusters = Math.floor((total - RESERVED_SECTORS - FAT_COUNT * fatSectors) / spc);
    const need = Math.ceil(((clusters + 2) * 4) / SECTOR);
    if (need <= fatSectors) {
      if (clusters < MIN_FAT32_CLUSTERS) {
        throw new CloudletsError('EUSAGE', `a FAT32 volume needs at least 33 MiB; got ${size} bytes`);
      }
      return { sectorsPerCluster: spc, fatSectors, clusters };
    }
    fatSectors = need;
  }
}

/**
 * Writes a FAT32 volume holding `files` at `offset` of `target`, in ascending offsets, touching only
 * sectors that hold something (the free part of each FAT and of the data area stays sparse).
 */
export async function writeFat32(
  target: BlockTarget,
  offset: number,
  files: FatFile[],
  opts: FatOptions,
): Promise<void> {
  const { sectorsPerCluster: spc, fatSectors, clusters } = fat32Geometry(opts.size);
  const clusterBytes = spc * SECTOR;
  const root = buildTree(files);

  // Allocate clusters depth-first in name order: deterministic, and each file contiguous.
  let next = 2;
  const allocate = (n: Node): void => {
    const bytes = n.dir ? dirBytes(n) : n.data.length;
    n.clusters = n.dir ? Math.max(1, Math.ceil(bytes / clusterBytes)) : Math.ceil(bytes / clusterBytes);
    n.firstCluster = n.clusters > 0 ? next : 0;
    next += n.clusters;
    for (const c of n.children) allocate(c);
  };
  allocate(root);
  const used = next - 2;
  if (used > clusters) {
    throw new CloudletsError(
      'EUSAGE',
      `the EFI system partition is too small for its files (${used} clusters > ${clusters})`,
    );
  }

  const fat = Buffer.alloc(next * 4);
  fat.writeUInt32LE(0x0ffffff8, 0);
  fat.writeUInt32LE(EOC, 4);
  const chain = (n: Node): void => {
    for (let i = 0; i < n.clusters; i++) {
      const c = n.firstCluster + i;
      fat.writeUInt32LE(i === n.clusters - 1 ? EOC : c + 1, c * 4);
    }
    for (const c of n.children) chain(c);
  };
  chain(root);

  const stamp = dosTime(opts.mtime);
  const label = (opts.label ?? 'NO NAME').toUpperCase().padEnd(11, ' ').slice(0, 11);
  const boot = bootSector({ ...opts, spc, fatSectors, label });
  const fsinfo = fsInfoSector(clusters - used, next);
  const head = Buffer.alloc(RESERVED_SECTORS * SECTOR);
  boot.copy(head, 0);
  fsinfo.copy(head, SECTOR);
  boot.copy(head, 6 * SECTOR); // backup boot sector
  fsinfo.copy(head, 7 * SECTOR);
  await target.write(offset, head);
  for (let i = 0; i < FAT_COUNT; i++) {
    await target.write(offset + (RESERVED_SECTORS + i * fatSectors) * SECTOR, fat);
  }

  const dataStart = offset + (RESERVED_SECTORS + FAT_COUNT * fatSectors) * SECTOR;
  const clusterOffset = (c: number) => dataStart + (c - 2) * clusterBytes;
  const emit = async (n: Node, parent: Node | undefined): Promise<void> => {
    if (n.dir) {
      const buf = Buffer.alloc(n.clusters * clusterBytes);
      let pos = 0;
      const put = (e: Buffer) => {
        e.copy(buf, pos);
        pos += DIR_ENTRY;
      };
      if (!parent) {
        if (opts.label) put(dirEntry(Buffer.from(label, 'latin1'), 0x08, 0, 0, 0, stamp));
      } else {
        put(dirEntry(Buffer.from('.          ', 'latin1'), 0x10, 0, n.firstCluster, 0, stamp));
        // ".." of a first-level directory points at cluster 0, meaning the root (spec, "FAT Directories").
        const up = parent === root ? 0 : parent.firstCluster;
        put(dirEntry(Buffer.from('..         ', 'latin1'), 0x10, 0, up, 0, stamp));
      }
      for (const c of n.children) {
        const s = c.short!;
        if (s.lfn) for (const e of lfnEntries(c.name, s.bytes)) put(e);
        put(
          dirEntry(
            s.bytes,
            c.dir ? 0x10 : 0x20,
            s.caseFlags,
            c.firstCluster,
            c.dir ? 0 : c.data.length,
            stamp,
          ),
        );
      }
      await target.write(clusterOffset(n.firstCluster), buf);
    } else if (n.clusters > 0) {
      await target.write(clusterOffset(n.firstCluster), n.data);
    }
    for (const c of n.children) await emit(c, n);
  };
  await emit(root, undefined);
}

function buildTree(files: FatFile[]): Node {
  const mk = (name: string, dir: boolean, data: Buffer = Buffer.alloc(0)): Node => ({
    name,
    short: undefined,
    dir,
    children: [],
    data,
    firstCluster: 0,
    clusters: 0,
  });
  const root = mk('', true);
  for (const f of files) {
    const parts = f.path.split('/').filter((p) => p !== '');
    if (parts.length === 0) throw new Error(`FAT: empty path ${f.path}`);
    let dir = root;
    parts.forEach((part, i) => {
      const last = i === parts.length - 1;
      const found = dir.children.find((c) => c.name.toUpperCase() === part.toUpperCase());
      if (found) {
        if (last || !found.dir) throw new Error(`FAT: ${f.path} clashes with another file`);
        dir = found;
      } else {
        const n = mk(part, !last, last ? f.data : undefined);
        dir.children.push(n);
        dir = n;
      }
    });
  }
  const finish = (n: Node): void => {
    n.children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const shorts = assignShortNames(n.children.map((c) => c.name));
    n.children.forEach((c, i) => {
      c.short = shorts[i];
    });
    for (const c of n.children) finish(c);
  };
  finish(root);
  return root;
}

function dirBytes(n: Node): number {
  let entries = n.name === '' ? 1 : 2; // the root holds the volume label; others "." and ".."
  for (const c of n.children) entries += 1 + (c.short!.lfn ? Math.ceil(c.name.length / 13) : 0);
  return entries * DIR_ENTRY;
}

function dirEntry(
  name11: Buffer,
  attr: number,
  caseFlags: number,
  cluster: number,
  size: number,
  t: DosTime,
): Buffer {
  const e = Buffer.alloc(DIR_ENTRY);
  name11.copy(e, 0, 0, 11);
  e[11] = attr;
  e[12] = caseFlags;
  e[13] = 0;
  e.writeUInt16LE(t.time, 14);
  e.writeUInt16LE(t.date, 16);
  e.writeUInt16LE(t.date, 18);
  e.writeUInt16LE((cluster >>> 16) & 0xffff, 20);
  e.writeUInt16LE(t.time, 22);
  e.writeUInt16LE(t.date, 24);
  e.writeUInt16LE(cluster & 0xffff, 26);
  e.writeUInt32LE(size, 28);
  return e;
}

interface DosTime {
  date: number;
  time: number;
}

/** FAT timestamps are local-time fields with 2-second resolution; we store UTC, 1980-01-01 to 2107. */
function dosTime(seconds: number): DosTime {
  const min = Date.UTC(1980, 0, 1) / 1000;
  const max = Date.UTC(2107, 11, 31, 23, 59, 58) / 1000;
  const d = new Date(Math.min(max, Math.max(min, seconds)) * 1000);
  return {
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | Math.floor(d.getUTCSeconds() / 2),
  };
}

function bootSector(o: FatOptions & { spc: number; fatSectors: number; label: string }): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.set([0xeb, 0x58, 0x90], 0);
  b.write('CLOUDLET', 3, 'latin1');
  b.writeUInt16LE(SECTOR, 11);
  b[13] = o.spc;
  b.writeUInt16LE(RESERVED_SECTORS, 14);
  b[16] = FAT_COUNT;
  b.writeUInt16LE(0, 17); // root entries: 0 on FAT32
  b.writeUInt16LE(0, 19);
  b[21] = 0xf8;
  b.writeUInt16LE(0, 22);
  b.writeUInt16LE(63, 24);
  b.writeUInt16LE(255, 26);
  b.writeUInt32LE(o.hiddenSectors ?? 0, 28);
  b.writeUInt32LE(Math.floor(o.size / SECTOR), 32);
  b.writeUInt32LE(o.fatSectors, 36);
  b.writeUInt16LE(0, 40);
  b.writeUInt16LE(0, 42);
  b.writeUInt32LE(2, 44); // root directory cluster
  b.writeUInt16LE(1, 48); // FSInfo sector
  b.writeUInt16LE(6, 50); // backup boot sector
  b[64] = 0x80;
  b[66] = 0x29;
  b.writeUInt32LE(o.volumeId >>> 0, 67);
  b.write(o.label, 71, 'latin1');
  b.write('FAT32   ', 82, 'latin1');
  // Not bootable: the code at 0x5a prints nothing and halts, which is all a BIOS may ever run here.
  b.set([0xfa, 0xf4, 0xeb, 0xfd], 0x5a);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

function fsInfoSector(free: number, nextFree: number): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeUInt32LE(0x41615252, 0);
  b.writeUInt32LE(0x61417272, 484);
  b.writeUInt32LE(free, 488);
  b.writeUInt32LE(nextFree, 492);
  b.writeUInt32LE(0xaa550000, 508);
  return b;
}
