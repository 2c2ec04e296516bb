/**
 * Sizing before writing: a tally over the entries' metadata (no content read) and the smallest
 * filesystem that holds it, computed with the same layout the writer uses.
 */
import type { Entry } from '../../stream/entry.js';
import { dirBlockCount } from './dir.js';
import {
  BLOCK_SIZE,
  FIRST_INO,
  type LayoutOptions,
  LOST_FOUND_PATH,
  MIN_FS_BLOCKS,
  planLayout,
} from './layout.js';
import { OpenDirs } from './open-dirs.js';
import { encodeXattrs } from './xattr.js';

export interface Ext4SizeStats {
  /** Regular files (hard links not counted). */
  files: number;
  /** Directories, the root included. */
  dirs: number;
  /** Sum of regular file sizes. */
  totalBytes: number;
  /** Symlinks, devices, fifos, sockets: entries that take an inode and (almost) no block. */
  others?: number | undefined;
  /** Exact data blocks (sum of ceil(size / 4096) over files, plus one per long symlink); else derived from totalBytes. */
  dataBlocks?: number | undefined;
  /** Exact directory blocks; else estimated from `files + dirs + others + hardlinks` at 64 entries per block. */
  dirBlocks?: number | undefined;
  /** Hard link entries (each takes a directory record, no inode). */
  hardlinks?: number | undefined;
  /** Entries whose xattrs overflow the inode into a block. */
  xattrBlocks?: number | undefined;
}

/** Collects `Ext4SizeStats` from a pass over the entries' metadata (never reads content). */
/** `result()` is read once, after the last entry. */
export function createExt4Tally(): { add(e: Entry): void; result(): Ext4SizeStats } {
  const stats = {
    files: 0,
    dirs: 0,
    totalBytes: 0,
    others: 0,
    dataBlocks: 0,
    dirBlocks: 0,
    hardlinks: 0,
    xattrBlocks: 0,
  };
  // Name lengths per open directory, to count directory blocks exactly, as the writer lays them out.
  // Paths are compared as bytes in place: this runs for every entry of an export.
  const countBlocks = (d: { path: Buffer; names: number[] }): void => {
    stats.dirBlocks += dirBlockCount(d.names, d.path.equals(LOST_FOUND_PATH) ? 4 : 1);
  };
  const open = new OpenDirs<{ path: Buffer; names: number[] }>(countBlocks);
  let lostFound = false;
  return {
    add(e: Entry): void {
      const path = e.path;
      if (path.length === 1) {
        stats.dirs++;
        open.open({ path, names: [] });
      } else {
        let slash = path.length - 1;
        while (slash > 0 && path[slash] !== 0x2f) slash--;
        // No parent open: the writer refuses the tree, with the path.
        open.parentOf(path, slash)?.names.push(path.length - slash - 1);
        if (path.equals(LOST_FOUND_PATH)) lostFound = true;
        if (e.type === 'dir') {
          stats.dirs++;
          open.open({ path, names: [] });
        } else if (e.type === 'file') {
          stats.files++;
          stats.totalBytes += e.size;
          stats.dataBlocks += Math.ceil(e.size / BLOCK_SIZE);
        } else if (e.type === 'hardlink') stats.hardlinks++;
        else {
          stats.others++;
          if (e.type === 'symlink' && (e.linkTarget?.length ?? 0) >= 60) stats.dataBlocks++;
        }
      }
      if (e.xattrs.size > 0 && encodeXattrs(e.xattrs, e.path.toString('utf8')).block) stats.xattrBlocks++;
    },
    result(): Ext4SizeStats {
      const root = open.closeAllButRoot();
      if (root) countBlocks(root);
      return { ...stats, dirBlocks: stats.dirBlocks + (lostFound ? 0 : 4) };
    },
  };
}

/**
 * The smallest filesystem size (a whole number of MiB) that `writeExt4` fills with content of these
 * stats, with the given layout options. It adds room for extent tree blocks (fragmented or sparse
 * files) but no free space: a caller wanting slack adds it.
 */
export function estimateExt4Size(stats: Ext4SizeStats, opts: Omit<LayoutOptions, 'sizeBytes'> = {}): number {
  const layoutOpts: LayoutOptions = {
    sizeBytes: 0,
    inodeRatio: opts.inodeRatio,
    inodeCount: opts.inodeCount,
    journalBlocks: opts.journalBlocks,
    reservedPercent: opts.reservedPercent,
  };
  const entries = stats.files + stats.dirs + (stats.others ?? 0);
  const inodes = entries + FIRST_INO;
  const data = stats.dataBlocks ?? Math.ceil(stats.totalBytes / BLOCK_SIZE) + stats.files;
  const dirBlocks = stats.dirBlocks ?? stats.dirs + 4 + Math.ceil((entries + (stats.hardlinks ?? 0)) / 64);
  // Tree blocks: a leaf per 340 extents; an extent holds at most 32768 blocks and breaks at metadata.
  const treeBlocks = Math.ceil(data / 300) + Math.ceil(dirBlocks / 300) + 8;
  const need = data + dirBlocks + treeBlocks + (stats.xattrBlocks ?? 0);
  const MiB = 1024 * 1024;
  let size = Math.max(MIN_FS_BLOCKS * BLOCK_SIZE, Math.ceil((need * BLOCK_SIZE * 1.02) / MiB) * MiB);
  for (;;) {
    let layout: ReturnType<typeof planLayout> | undefined;
    try {
      layout = planLayout({ ...layoutOpts, sizeBytes: size });
    } catch {
      layout = undefined;
    }
    if (layout) {
      const room = layout.blocksCount - layout.reservedTotal;
      const blockDeficit = need - room;
      const inodeDeficit = inodes - layout.inodesCount;
      if (blockDeficit <= 0 && inodeDeficit <= 0) return size;
      const ratio = opts.inodeCount ? 0 : (opts.inodeRatio ?? 16384);
      const grow = Math.max(blockDeficit * BLOCK_SIZE, inodeDeficit * ratio, MiB);
      size += Math.ceil(grow / MiB) * MiB;
    } else size += Math.max(MiB, Math.ceil(size / 8 / MiB) * MiB);
  }
}
