// `cloudlets build --format raw`: an image's entry stream → a bootable disk (GPT or MBR, FAT ESP, ext4
// root, GRUB for BIOS and UEFI), written into a sparse file without mounting anything.
import { randomUUID } from 'node:crypto';
import { basename } from 'node:path';
import {
  type EarlyGrubBios,
  type EarlyGrubEfi,
  grubConfig,
  startGrubBios,
  startGrubEfi,
} from '../boot/grub.js';
import { deriveUuid } from '../disk/partition/guid.js';
import type { BlockTarget } from '../disk/target.js';
import { CloudletsError } from '../errors.js';
import {
  type DiskFormat,
  openDiskTarget,
  type VhdSubformat,
  type VmdkAdapter,
  type VmdkSubformat,
} from '../formats/index.js';
import { INODE_SLAB_BYTES, MAX_STAGE_BUFFERS, STAGE_BYTES, WARM_INODE_SLABS } from '../fs/ext4/index.js';
import { writeFat32 } from '../fs/fat/index.js';
import type { Manifest } from '../manifest/index.js';
import type { Entry, EntryStream, ImageSource } from '../stream/entry.js';
import { injectEntries } from '../stream/filters/inject.js';
import { releaseCachedPages } from '../util/page-cache.js';
import { releaseBuffers, warmBuffers } from '../util/warm-buffers.js';
import { resolveKernel } from './kernel.js';
import { type BootMode, partitionTable, planLayout } from './layout.js';
import { withAtomicDisk } from './output.js';
import { writeExt4RootFs } from './rootfs.js';
import { DEFAULT_KEEP, replayEntries, scanTree } from './scan.js';
import { autoDiskSize, minRootBytes } from './size.js';

export type { BootMode } from './layout.js';

export interface RootFsOptions {
  /** Filesystem size in bytes (a whole number of MiB). */
  size: number;
  /** Filesystem UUID (text form); GRUB and the kernel find the root by it. */
  uuid: string;
  label: string;
  /** Superblock and journal times, seconds since the epoch. */
  timestamp: number;
  /** Seed for anything else the writer would pick at random (directory hash seed...). */
  seed: string;
  /** False when the entries hold no hard links (the scan counted none): nothing is indexed for them. */
  hardLinks?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

/** Writes a root filesystem holding `entries` at `offset` of `target`. */
export type RootFsWriter = (
  entries: EntryStream,
  target: BlockTarget,
  offset: number,
  opts: RootFsOptions,
) => Promise<void>;

export interface BuildDiskOptions {
  /** The image's manifest and source (for the kernel entry point and reading kernel paths). */
  manifest: Manifest;
  source: ImageSource;
  /**
   * The entries that go into the root filesystem (templates rendered, volatile paths left out), sorted.
   * Called once for sizes and kernels (content not read); the write pass reuses the entries of that
   * pass when they can be read again (a directory source, within limits), else calls it a second time.
   */
  entries: () => EntryStream;
  /** The output file. */
  output: string;
  /** Replace an existing output; default false. */
  force?: boolean;
  /** The container written (src/formats); default 'raw'. */
  format?: DiskFormat | undefined;
  /** vmdk: streamOptimized (default) or monolithicSparse; vhd: fixed (default) or dynamic. */
  subformat?: VmdkSubformat | VhdSubformat | undefined;
  /** Disk size in bytes, or 'auto' (default): the root's least size + 20% + 64 MiB, plus the boot partitions. */
  size?: number | 'auto';
  /** Default 'hybrid': GPT with a BIOS boot partition and an ESP, bootable by BIOS and UEFI. */
  boot?: BootMode;
  /** Image paths overriding the kernel entry point; `cmdline` replaces the entry point's arguments. */
  kernel?: string | undefined;
  initrd?: string | undefined;
  cmdline?: string | undefined;
  /**
   * Fixes every identifier and time: from `sourceDateEpoch` when given (SOURCE_DATE_EPOCH), else the newest
   * mtime in the image; identifiers come from a digest of the tree's metadata and that time.
   */
  reproducible?: boolean;
  sourceDateEpoch?: number | undefined;
  /** The root filesystem writer; default the in-process ext4 writer. */
  writeRootFs?: RootFsWriter;
  signal?: AbortSignal | undefined;
  /** For tests: the current time in seconds. */
  now?: () => number;
  /** Rounds the `auto` size up to what a target requires (a whole GiB for GCE); src/targets sets it. */
  roundAutoSize?: ((size: number) => number) | undefined;
  /**
   * Called once the disk is planned and before anything is written: a target profile checks its rules
   * here (size alignment, the initrd's drivers) and may throw to stop the build.
   */
  beforeWrite?: ((plan: DiskPlan) => Promise<void>) | undefined;
  /**
   * Told the bytes written to the disk so far and the size of the files going in (most of what will be
   * written), for a progress display.
   */
  onProgress?: ((progress: { bytes: number; contentBytes: number }) => void) | undefined;
  /** VMDK: the controller the descriptor names, asked for after `beforeWrite` (which may choose it). */
  vmdkAdapter?: (() => VmdkAdapter | undefined) | undefined;
}

/** What `beforeWrite` sees: the disk as it will be written. */
export interface DiskPlan {
  size: number;
  boot: BootMode;
  rootFsUuid: string;
  kernel: string;
  initrd: string | undefined;
  cmdline: string;
  /** Seed and time every identifier and time stamp derives from. */
  seed: string;
  timestamp: number;
}

export interface BuildDiskResult {
  output: string;
  size: number;
  boot: BootMode;
  partitionTable: 'gpt' | 'mbr';
  rootFsUuid: string;
  rootOffset: number;
  rootSize: number;
  espOffset: number | undefined;
  kernel: string;
  initrd: string | undefined;
  cmdline: string;
  fstabAdded: boolean;
}

export async function buildDisk(o: BuildDiskOptions): Promise<BuildDiskResult> {
  // The output this build replaces hands back its cached pages while the tree is read, for the new
  // disk's writes to take (src/util/page-cache.ts); awaited before the new disk moves in.
  const released = o.force ? releaseCachedPages(o.output) : undefined;
  // The ext4 writer's stage buffers and first inode table slabs, warmed on the thread pool while the tree
  // is read (warm-buffers.ts).
  const warming = o.writeRootFs
    ? undefined
    : warmBuffers(MAX_STAGE_BUFFERS, STAGE_BYTES).then(() => warmBuffers(WARM_INODE_SLABS, INODE_SLAB_BYTES));
  try {
    return await buildDiskReleased(o, released);
  } finally {
    await released;
    await warming;
    releaseBuffers();
  }
}

async function buildDiskReleased(
  o: BuildDiskOptions,
  released: Promise<void> | undefined,
): Promise<BuildDiskResult> {
  const boot = o.boot ?? 'hybrid';
  // GRUB's processes start before the tree is read (startToolEarly says why) and wait for their config.
  const early = {
    bios: boot === 'uefi' ? undefined : startGrubBios(),
    efi: boot === 'bios' ? undefined : startGrubEfi(),
  };
  try {
    return await buildWithGrub(o, released, boot, early);
  } finally {
    early.bios?.cancel();
    early.efi?.cancel();
  }
}

async function buildWithGrub(
  o: BuildDiskOptions,
  released: Promise<void> | undefined,
  boot: BootMode,
  early: { bios: EarlyGrubBios | undefined; efi: EarlyGrubEfi | undefined },
): Promise<BuildDiskResult> {
  const reproducible = o.reproducible || o.sourceDateEpoch !== undefined;
  const scan = await scanTree(o.entries(), { keep: DEFAULT_KEEP, digest: reproducible });
  const kernel = await resolveKernel({
    manifest: o.manifest,
    source: o.source,
    paths: scan.paths,
    kernel: o.kernel,
    initrd: o.initrd,
    cmdline: o.cmdline,
  });

  const time =
    o.sourceDateEpoch ?? (reproducible ? scan.newestMtimeSec : (o.now?.() ?? Math.floor(Date.now() / 1000)));
  const seed = reproducible ? `cloudlets-disk\0${scan.digest}\0${time}\0${boot}` : randomUUID();
  const rootFsUuid = deriveUuid(seed, 'root-filesystem');

  const extraFiles = scan.hasFstab ? 0 : 1;
  const minRoot = minRootBytes(scan, extraFiles);
  const autoSize = () => autoDiskSize(scan, boot, extraFiles);
  const size =
    o.size === undefined || o.size === 'auto' ? (o.roundAutoSize ?? ((n) => n))(autoSize()) : o.size;
  const layout = planLayout(boot, size);
  if (layout.root.size < minRoot) {
    throw new CloudletsError(
      'EUSAGE',
      `the disk (${mib(size)} MiB) is too small for this image (its root filesystem needs ${mib(minRoot)} MiB)`,
      {
        where: '--size',
        hint: `use --size auto (${mib(autoDiskSize(scan, boot, extraFiles))}M for this image), or a larger size`,
      },
    );
  }

  await o.beforeWrite?.({
    size,
    boot,
    rootFsUuid,
    kernel: kernel.kernel,
    initrd: kernel.initrd,
    cmdline: kernel.cmdline,
    seed,
    timestamp: time,
  });

  const grubOpts = { rootFsUuid, kernel: kernel.kernel, initrd: kernel.initrd, cmdline: kernel.cmdline };
  const env = { ...process.env, SOURCE_DATE_EPOCH: String(time) };
  // The two grub-mkimage runs are independent child processes: they run side by side, and beside the
  // root filesystem's write below (on a second core), which does not need them.
  const grub = Promise.all([
    layout.core && early.bios
      ? early.bios.build({
          config: grubConfig(grubOpts),
          env,
          coreLba: layout.core.lba,
          maxCoreBytes: layout.core.maxBytes,
        })
      : undefined,
    layout.esp && early.efi
      ? early.efi.build({ config: grubConfig({ ...grubOpts, efi: true }), env })
      : undefined,
  ]);
  grub.catch(() => {}); // awaited below; this only keeps a failure during the root's write from going unhandled

  const fstab = `# written by cloudlets build: the root filesystem\nUUID=${rootFsUuid} / ext4 defaults 0 1\n`;
  const extra: Entry[] = [];
  if (!scan.hasFstab) {
    const base = {
      uid: 0,
      gid: 0,
      mtimeNs: BigInt(time) * 1_000_000_000n,
      xattrs: new Map<string, Buffer>(),
    };
    if (!scan.hasEtc) extra.push({ ...base, path: Buffer.from('/etc'), type: 'dir', mode: 0o755, size: 0 });
    const data = Buffer.from(fstab);
    extra.push({
      ...base,
      path: Buffer.from('/etc/fstab'),
      type: 'file',
      mode: 0o644,
      size: data.length,
      content: async function* () {
        yield data;
      },
    });
  }

  const open = (path: string, virtualSize: number) =>
    openDiskTarget(o.format ?? 'raw', path, virtualSize, {
      subformat: o.subformat,
      seed,
      timestamp: time,
      name: basename(o.output),
      vmdkAdapter: o.vmdkAdapter?.(),
      signal: o.signal,
    });
  await withAtomicDisk(
    o.output,
    size,
    {
      force: o.force ?? false,
      signal: o.signal,
      beforeReplace: released,
      open,
      onWrite: o.onProgress && ((bytes) => o.onProgress?.({ bytes, contentBytes: scan.ext4.totalBytes })),
    },
    async (target) => {
      // The root filesystem first, then the partition table and boot code once GRUB is ready. Every
      // target takes writes in any order: the sparse containers place blocks in order of first touch
      // (the same order on every run, so the same bytes), the VMDK stream spills and sorts its writes.
      await (o.writeRootFs ?? writeExt4RootFs)(
        injectEntries(scan.replay ? replayEntries(scan.replay, o.signal) : o.entries(), extra),
        target,
        layout.root.offset,
        {
          size: layout.root.size,
          uuid: rootFsUuid,
          label: 'root',
          timestamp: time,
          seed,
          hardLinks: (scan.ext4.hardlinks ?? 1) > 0,
          signal: o.signal,
        },
      );
      const [bios, efi] = await grub;
      const table = partitionTable(layout, seed, bios?.bootImg);
      await target.write(0, table.head);
      if (bios) {
        await target.write(layout.core!.lba * 512, bios.coreImg);
      }
      if (layout.esp && efi) {
        await writeFat32(target, layout.esp.offset, [{ path: '/EFI/BOOT/BOOTX64.EFI', data: efi }], {
          size: layout.esp.size,
          volumeId: Buffer.from(deriveUuid(seed, 'esp-volume-id').slice(0, 8), 'hex').readUInt32BE(0),
          label: 'ESP',
          mtime: time,
          hiddenSectors: layout.esp.offset / 512,
        });
      }
      if (table.tail) await target.write(table.tail.offset, table.tail.data);
    },
  );

  return {
    output: o.output,
    size,
    boot,
    partitionTable: layout.table,
    rootFsUuid,
    rootOffset: layout.root.offset,
    rootSize: layout.root.size,
    espOffset: layout.esp?.offset,
    kernel: kernel.kernel,
    initrd: kernel.initrd,
    cmdline: kernel.cmdline,
    fstabAdded: !scan.hasFstab,
  };
}

const mib = (n: number) => Math.ceil(n / (1024 * 1024));
