/**
 * ext4 written in-process from an entry stream: no root, no mount, no mkfs, same bytes for the same
 * input. See writer.ts for the streaming model, layout.ts for the on-disk geometry, and size.ts for
 * sizing before a write (`writeExt4` only finds out it is out of space when it runs out: run
 * `createExt4Tally` over the entries' metadata and `estimateExt4Size` first to fail before writing).
 */

export { defaultJournalBlocks } from './layout.js';
export { createExt4Tally, type Ext4SizeStats, estimateExt4Size } from './size.js';
export {
  type Ext4Options,
  type Ext4Result,
  INODE_SLAB_BYTES,
  MAX_STAGE_BUFFERS,
  STAGE_BYTES,
  WARM_INODE_SLABS,
  writeExt4,
} from './writer.js';
