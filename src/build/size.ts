// Disk size: what `--size auto` picks, and the least a given size must hold, from the ext4 writer's own
// estimate (same layout code as the writer), so a too-small size fails before anything is written.
import { CloudletsError } from '../errors.js';
import { estimateExt4Size } from '../fs/ext4/index.js';
import { type BootMode, MiB, overheadBytes } from './layout.js';
import type { TreeScan } from './scan.js';

/** The smallest root filesystem holding the scanned tree plus `extraBytes` (an injected /etc/fstab). */
export function minRootBytes(s: TreeScan, extraFiles = 0): number {
  const stats = { ...s.ext4, files: s.ext4.files + extraFiles };
  if (stats.dataBlocks !== undefined) stats.dataBlocks += extraFiles;
  return estimateExt4Size(stats);
}

/** `--size auto`: the root gets its least size + 20% + 64 MiB (room to boot and log), in whole MiB. */
export function autoDiskSize(s: TreeScan, boot: BootMode, extraFiles = 0): number {
  const root = Math.ceil((minRootBytes(s, extraFiles) * 1.2 + 64 * MiB) / MiB) * MiB;
  return root + overheadBytes(boot);
}

/** Parses `auto`, `2G`, `512M`, `1.5GiB`, `1048576` (bytes); the result must be a whole number of MiB. */
export function parseSize(text: string): number | 'auto' {
  if (text === 'auto') return 'auto';
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) {
    throw new CloudletsError('EUSAGE', `not a size: ${JSON.stringify(text)}`, {
      where: '--size',
      hint: 'use auto, or a number with a unit: 512M, 2G',
    });
  }
  const unit = { '': 1, K: 1024, M: MiB, G: 1024 * MiB, T: 1024 * 1024 * MiB }[m[2]!.toUpperCase()]!;
  const bytes = Math.round(Number(m[1]) * unit);
  if (bytes % MiB !== 0) {
    throw new CloudletsError('EUSAGE', `the disk size must be a whole number of MiB; got ${bytes} bytes`, {
      where: '--size',
    });
  }
  return bytes;
}
