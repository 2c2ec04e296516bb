// One metadata-only pass over the entry stream (content is never read): what the disk needs to know
// before any byte is written — how big the content is, which kernels the image carries, whether it has
// an /etc/fstab, and a digest that identifies the tree for reproducible identifiers.
import { createHash } from 'node:crypto';
import { createExt4Tally, type Ext4SizeStats } from '../fs/ext4/index.js';
import type { Entry } from '../stream/entry.js';

export interface TreeScan {
  entries: number;
  /** What the ext4 writer needs to know to size the root filesystem. */
  ext4: Ext4SizeStats;
  paths: Set<string>;
  hasFstab: boolean;
  hasEtc: boolean;
  /** SHA-256 (hex) over every entry's metadata: path, type, mode, owner, size, time, link target. */
  digest: string;
  newestMtimeSec: number;
}

export async function scanTree(entries: AsyncIterable<Entry>): Promise<TreeScan> {
  const hash = createHash('sha256');
  const s: TreeScan = {
    entries: 0,
    ext4: { files: 0, dirs: 0, totalBytes: 0 },
    paths: new Set(),
    hasFstab: false,
    hasEtc: false,
    digest: '',
    newestMtimeSec: 0,
  };
  const tally = createExt4Tally();
  for await (const e of entries) {
    s.entries++;
    tally.add(e);
    const p = e.path.toString('utf8');
    // Only /boot and the few paths we look up are kept: a million-file tree must not cost a million strings.
    if (p.startsWith('/boot/') || p === '/etc/fstab' || p === '/etc') s.paths.add(p);
    if (p === '/etc/fstab') s.hasFstab = true;
    if (p === '/etc' && e.type === 'dir') s.hasEtc = true;
    const sec = Number(e.mtimeNs / 1_000_000_000n);
    if (sec > s.newestMtimeSec) s.newestMtimeSec = sec;
    hash.update(e.path).update('\0');
    hash.update(
      `${e.type} ${e.mode} ${e.uid} ${e.gid} ${e.size} ${e.mtimeNs} ${e.devMajor ?? ''} ${e.devMinor ?? ''}\0`,
    );
    if (e.linkTarget) hash.update(e.linkTarget).update('\0');
  }
  s.ext4 = tally.result();
  s.digest = hash.digest('hex');
  return s;
}

/** `/boot/vmlinuz-VER` files and their initrds, newest version first. */
export function detectKernels(
  paths: Set<string>,
): { kernel: string; initrd: string | undefined; version: string }[] {
  const found: { kernel: string; initrd: string | undefined; version: string }[] = [];
  for (const p of paths) {
    const m = /^\/boot\/vmlinuz-(.+)$/.exec(p);
    if (!m) continue;
    const v = m[1]!;
    const initrd = [`/boot/initrd.img-${v}`, `/boot/initramfs-${v}.img`, `/boot/initrd-${v}`].find((c) =>
      paths.has(c),
    );
    found.push({ kernel: p, initrd, version: v });
  }
  return found.sort((a, b) => compareVersions(b.version, a.version));
}

/** Version order as `sort -V` sees it for kernel release strings: numbers compare as numbers. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    if (i % 2 === 1) {
      const d = Number(x || -1) - Number(y || -1);
      if (d !== 0) return d;
    }
    return x < y ? -1 : 1;
  }
  return 0;
}
