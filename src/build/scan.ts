// One metadata-only pass over the entry stream (content is never read): what the disk needs to know
// before any byte is written — how big the content is, which kernels the image carries, whether it has
// an /etc/fstab, and a digest that identifies the tree for reproducible identifiers.
import { createHash } from 'node:crypto';
import { CloudletsError } from '../errors.js';
import { createExt4Tally, type Ext4SizeStats } from '../fs/ext4/index.js';
import { asBatch, type Entry, type EntryStream } from '../stream/entry.js';

const BOOT = Buffer.from('/boot/');
const ETC = Buffer.from('/etc');
const FSTAB = Buffer.from('/etc/fstab');

export interface TreeScan {
  entries: number;
  /** What the ext4 writer needs to know to size the root filesystem. */
  ext4: Ext4SizeStats;
  paths: Set<string>;
  hasFstab: boolean;
  hasEtc: boolean;
  /** SHA-256 (hex) over every entry's metadata: path, type, mode, owner, size, time, link target ('' when not asked for). */
  digest: string;
  newestMtimeSec: number;
  /**
   * The scanned entries, kept so the write pass can reuse them instead of walking the source (and
   * rendering the templates) again; undefined when the tree was too large to keep, or its content
   * could not be read again later (a streaming source such as a tar archive).
   */
  replay: Entry[] | undefined;
}

export interface ScanOptions {
  /** Compute `digest` (default true); a build that is not reproducible does not need it. */
  digest?: boolean;
  /** Keep the entries for a second pass (`TreeScan.replay`) while the tree stays within these limits. */
  keep?: { maxEntries: number; maxBufferedBytes: number } | undefined;
}

/**
 * Default limits for keeping the scan: metadata only (~0.5 KiB an entry) for up to 100,000 entries, and
 * up to 8 MiB of content from entries that can only be read while current (rendered templates, injected
 * files: small; a tar archive's files exceed it and the source is read again instead).
 */
export const DEFAULT_KEEP = { maxEntries: 100_000, maxBufferedBytes: 8 * 1024 * 1024 };

export async function scanTree(entries: EntryStream, opts: ScanOptions = {}): Promise<TreeScan> {
  const hash = createHash('sha256');
  const s: TreeScan = {
    entries: 0,
    ext4: { files: 0, dirs: 0, totalBytes: 0 },
    paths: new Set(),
    hasFstab: false,
    hasEtc: false,
    digest: '',
    newestMtimeSec: 0,
    replay: undefined,
  };
  const tally = createExt4Tally();
  let newestNs = 0n;
  let kept: Entry[] | undefined = opts.keep ? [] : undefined;
  let buffered = 0;
  // Hashing a line per entry costs a native call each: batch the text and hash it in large pieces.
  let pending = '';
  const wantDigest = opts.digest ?? true;
  for await (const item of entries)
    for (const e of asBatch(item)) {
      s.entries++;
      if (kept) {
        if (kept.length >= opts.keep!.maxEntries) kept = undefined;
        else if (e.type === 'file' && e.size > 0 && !e.openContentSync) {
          // Content readable only now: keep a copy, within the budget.
          if (buffered + e.size > opts.keep!.maxBufferedBytes || !e.content) kept = undefined;
          else {
            const data = await readAll(e.content(), e.size);
            buffered += data.length;
            kept.push({
              ...e,
              content: async function* () {
                yield data;
              },
            });
          }
        } else kept.push(e);
      }
      tally.add(e);
      // Only /boot and the few paths we look up are kept: a million-file tree must not cost a million strings.
      const path = e.path;
      // Byte tests first: the calls below cost a native call each, for every path of the tree.
      if (
        path[1] === 0x65 /* e */
          ? path.equals(ETC) || path.equals(FSTAB)
          : path[1] === 0x62 /* b */ && path.length > BOOT.length && path.indexOf(BOOT) === 0
      ) {
        const p = path.toString('utf8');
        s.paths.add(p);
        if (p === '/etc/fstab') s.hasFstab = true;
        if (p === '/etc' && e.type === 'dir') s.hasEtc = true;
      }
      if (e.mtimeNs > newestNs) newestNs = e.mtimeNs;
      if (!wantDigest) continue;
      // Paths and link targets are raw bytes; latin1 maps each byte to one character and back.
      pending += `${e.path.toString('latin1')}\0${e.type} ${e.mode} ${e.uid} ${e.gid} ${e.size} ${e.mtimeNs} ${e.devMajor ?? ''} ${e.devMinor ?? ''}\0`;
      if (e.linkTarget) pending += `${e.linkTarget.toString('latin1')}\0`;
      if (pending.length > 65536) {
        hash.update(pending, 'latin1');
        pending = '';
      }
    }
  s.ext4 = tally.result();
  if (newestNs > 0n) s.newestMtimeSec = Number(newestNs / 1_000_000_000n);
  if (wantDigest) s.digest = hash.update(pending, 'latin1').digest('hex');
  s.replay = kept;
  return s;
}

/** The kept entries again, in batches, stopping between batches when `signal` is aborted (as the export stream does). */
export async function* replayEntries(
  kept: readonly Entry[],
  signal?: AbortSignal,
): AsyncIterable<readonly Entry[]> {
  for (let i = 0; i < kept.length; i += REPLAY_BATCH) {
    if (signal?.aborted) throw signal.reason ?? new CloudletsError('EINTERRUPTED', 'interrupted');
    yield kept.slice(i, i + REPLAY_BATCH);
  }
}

/** Entries a replayed batch holds: about what a directory walk's chunk does. */
const REPLAY_BATCH = 512;

/** The whole content of a file entry (for the size it claims; a mismatch is reported by the writer). */
async function readAll(content: AsyncIterable<Buffer>, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of content) {
    chunks.push(chunk);
    total += chunk.length;
    if (total > size) break;
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
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
