// The root filesystem writer buildDisk uses by default: the in-process ext4 writer (src/fs/ext4).
import { deriveUuid, uuidBytes } from '../disk/partition/guid.js';
import { writeExt4 } from '../fs/ext4/index.js';
import type { RootFsWriter } from './index.js';

export const writeExt4RootFs: RootFsWriter = async (entries, target, offset, opts) => {
  await writeExt4(entries, target, offset, {
    sizeBytes: opts.size,
    uuid: uuidBytes(opts.uuid),
    hashSeed: uuidBytes(deriveUuid(opts.seed, 'ext4-hash-seed')),
    label: opts.label,
    timestampSec: opts.timestamp,
    hardLinks: opts.hardLinks,
  });
};
