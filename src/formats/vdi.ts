// VirtualBox VDI 1.1, dynamic ("normal") image, 1 MiB blocks: a 512-byte header, the block map (one u32
// per block: its index in the data area, or 0xffffffff for "never written, reads as zeros"), then the
// data blocks in order of first touch (sparse.ts). The data area starts at a 1 MiB boundary, as
// VirtualBox aligns it. Layout per VirtualBox's VDICore.h and QEMU's block/vdi.c (read, not copied).

import { containerTarget } from './container.js';
import { openOutputFile, roundUp } from './file.js';
import { guidLE, seedUuid } from './ids.js';
import type { DiskTarget, DiskTargetOptions } from './index.js';
import { sparseBlocks } from './sparse.js';

const BLOCK = 1024 * 1024;
const TEXT = '<<< Oracle VM VirtualBox Disk Image >>>\n';
const SIGNATURE = 0xbeda107f;
const VERSION_1_1 = 0x00010001;
const HEADER_1_PLUS_SIZE = 0x180; // the v1.1 header without the LCHS geometry, as QEMU writes it
const TYPE_NORMAL = 1; // dynamic
const UNALLOCATED = 0xffffffff;
const MAP_OFFSET = 512;

export async function openVdiTarget(
  path: string,
  size: number,
  opts: DiskTargetOptions,
): Promise<DiskTarget> {
  const file = await openOutputFile(path);
  const nBlocks = Math.ceil(size / BLOCK);
  const dataOffset = roundUp(MAP_OFFSET + nBlocks * 4, BLOCK);
  let count = 0;
  const blocks = sparseBlocks({
    file,
    size,
    blockSize: BLOCK,
    allocate: () => dataOffset + count++ * BLOCK,
  });

  async function complete(): Promise<void> {
    blocks.seal();
    const map = Buffer.alloc(roundUp(nBlocks * 4, 512), 0xff);
    for (let i = 0; i < nBlocks; i++) {
      const host = blocks.get(i);
      map.writeUInt32LE(host === undefined ? UNALLOCATED : (host - dataOffset) / BLOCK, i * 4);
    }
    const h = Buffer.alloc(512);
    h.write(TEXT, 0, 'latin1');
    h.writeUInt32LE(SIGNATURE, 64);
    h.writeUInt32LE(VERSION_1_1, 68);
    h.writeUInt32LE(HEADER_1_PLUS_SIZE, 72);
    h.writeUInt32LE(TYPE_NORMAL, 76);
    // 80: flags 0; 84: 256-byte comment, empty
    h.writeUInt32LE(MAP_OFFSET, 340);
    h.writeUInt32LE(dataOffset, 344);
    // 348..359: legacy geometry 0/0/0: VirtualBox computes one
    h.writeUInt32LE(512, 360); // sector size
    h.writeBigUInt64LE(BigInt(size), 368);
    h.writeUInt32LE(BLOCK, 376);
    // 380: extra data per block 0
    h.writeUInt32LE(nBlocks, 384);
    h.writeUInt32LE(blocks.allocated, 388);
    guidLE(seedUuid(opts.seed, 'vdi-create')).copy(h, 392);
    guidLE(seedUuid(opts.seed, 'vdi-modify')).copy(h, 408);
    // 424: linkage UUID, 440: parent modification UUID: zero (no parent)
    await file.write(MAP_OFFSET, map);
    await file.write(0, h);
    // The last block may be written only in part: the file still holds all of it.
    await file.truncate(dataOffset + count * BLOCK);
  }

  return containerTarget({ format: 'vdi', file, size, write: blocks.write, complete });
}
