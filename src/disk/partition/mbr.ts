// A classic MBR partition table (for `--boot bios`): up to four primary partitions, LBA addressing, CHS
// fields filled the way fdisk does for a 255-head, 63-sector geometry (or the "beyond CHS" marker).
import { CloudletsError } from '../../errors.js';

const SECTOR = 512;
const MAX_LBA32 = 0xffffffff;

export interface MbrPartition {
  /** Partition type byte: 0x83 Linux, 0xef EFI system. */
  type: number;
  firstLba: number;
  sectors: number;
  bootable?: boolean;
}

export interface MbrOptions {
  diskSize: number;
  /** The 32-bit disk signature at byte 440 (Linux shows it as the "disk identifier", PARTUUID prefix). */
  diskSignature: number;
  partitions: MbrPartition[];
  /** Boot code for bytes 0..439 (GRUB's boot.img). */
  bootCode?: Buffer;
}

export function buildMbr(opts: MbrOptions): Buffer {
  if (opts.partitions.length > 4) throw new Error('MBR: more than four partitions');
  const sectors = Math.floor(opts.diskSize / SECTOR);
  if (sectors - 1 > MAX_LBA32) {
    throw new CloudletsError('EUSAGE', 'an MBR disk cannot be larger than 2 TiB', {
      hint: 'use --boot hybrid (GPT)',
    });
  }
  const mbr = Buffer.alloc(SECTOR);
  opts.bootCode?.copy(mbr, 0, 0, Math.min(440, opts.bootCode.length));
  mbr.writeUInt32LE(opts.diskSignature >>> 0, 440);
  opts.partitions.forEach((p, i) => {
    const last = p.firstLba + p.sectors - 1;
    if (p.firstLba < 1 || last >= sectors) throw new Error(`MBR: partition ${i + 1} is outside the disk`);
    const e = mbr.subarray(446 + 16 * i, 446 + 16 * (i + 1));
    e[0] = p.bootable ? 0x80 : 0x00;
    chs(p.firstLba).copy(e, 1);
    e[4] = p.type;
    chs(last).copy(e, 5);
    e.writeUInt32LE(p.firstLba, 8);
    e.writeUInt32LE(p.sectors, 12);
  });
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  return mbr;
}

function chs(lba: number): Buffer {
  const heads = 255;
  const spt = 63;
  const c = Math.floor(lba / (heads * spt));
  if (c > 1023) return Buffer.from([0xfe, 0xff, 0xff]);
  const h = Math.floor(lba / spt) % heads;
  const s = (lba % spt) + 1;
  return Buffer.from([h, ((c >> 2) & 0xc0) | s, c & 0xff]);
}
