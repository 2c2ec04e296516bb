// qcow2 version 3 (QEMU's docs/interop/qcow2.txt), 64 KiB clusters, 16-bit refcounts, no extensions.
//
// Layout: the header cluster, the L1 table, then data clusters in order of first touch (sparse.ts);
// at finish() the L2 tables, the refcount blocks and the refcount table are appended. Every cluster of
// the file is used exactly once, so every refcount is 1 and every L1/L2 entry carries OFLAG_COPIED,
// which is what `qemu-img check` expects of an image without snapshots.

import { containerTarget } from './container.js';
import { openOutputFile } from './file.js';
import type { DiskTarget, DiskTargetOptions } from './index.js';
import { sparseBlocks } from './sparse.js';

const CLUSTER_BITS = 16;
const CLUSTER = 1 << CLUSTER_BITS;
const L2_ENTRIES = CLUSTER / 8;
const REFCOUNT_ORDER = 4; // 16-bit refcounts, the default
const REFCOUNTS_PER_BLOCK = CLUSTER / 2;
const OFLAG_COPIED = 1n << 63n;
const HEADER_LENGTH = 104; // version 3 without the optional compression type byte

export async function openQcow2Target(
  path: string,
  size: number,
  _opts: DiskTargetOptions,
): Promise<DiskTarget> {
  const file = await openOutputFile(path);
  const l1Size = Math.ceil(size / (CLUSTER * L2_ENTRIES));
  const l1Offset = CLUSTER;
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / CLUSTER));
  let next = l1Offset + l1Clusters * CLUSTER;
  const blocks = sparseBlocks({
    file,
    size,
    blockSize: CLUSTER,
    allocate: () => {
      const at = next;
      next += CLUSTER;
      return at;
    },
  });

  async function complete(): Promise<void> {
    blocks.seal();
    // L2 tables, one per 512 MiB of virtual disk that holds data, in virtual order.
    const l2s = new Map<number, Buffer>();
    for (const [index, host] of blocks.entries()) {
      const l1i = Math.floor(index / L2_ENTRIES);
      let l2 = l2s.get(l1i);
      if (!l2) {
        l2 = Buffer.alloc(CLUSTER);
        l2s.set(l1i, l2);
      }
      l2.writeBigUInt64BE(BigInt(host) | OFLAG_COPIED, (index % L2_ENTRIES) * 8);
    }
    const l1 = Buffer.alloc(l1Clusters * CLUSTER);
    for (const l1i of [...l2s.keys()].sort((a, b) => a - b)) {
      l1.writeBigUInt64BE(BigInt(next) | OFLAG_COPIED, l1i * 8);
      await file.write(next, l2s.get(l1i)!);
      next += CLUSTER;
    }
    await file.write(l1Offset, l1);

    // Refcounts: the blocks and the table count themselves, so grow both until they cover everything.
    const used = next / CLUSTER;
    let blocksN = 0;
    let tableClusters = 0;
    for (;;) {
      const total = used + blocksN + tableClusters;
      const needBlocks = Math.ceil(total / REFCOUNTS_PER_BLOCK);
      const needTable = Math.max(1, Math.ceil((needBlocks * 8) / CLUSTER));
      if (needBlocks === blocksN && needTable === tableClusters) break;
      blocksN = needBlocks;
      tableClusters = needTable;
    }
    const total = used + blocksN + tableClusters;
    const table = Buffer.alloc(tableClusters * CLUSTER);
    const blocksStart = next;
    for (let b = 0; b < blocksN; b++) {
      const block = Buffer.alloc(CLUSTER);
      const first = b * REFCOUNTS_PER_BLOCK;
      const n = Math.min(REFCOUNTS_PER_BLOCK, total - first);
      for (let i = 0; i < n; i++) block.writeUInt16BE(1, i * 2);
      table.writeBigUInt64BE(BigInt(blocksStart + b * CLUSTER), b * 8);
      await file.write(blocksStart + b * CLUSTER, block);
    }
    const tableOffset = blocksStart + blocksN * CLUSTER;
    await file.write(tableOffset, table);

    const h = Buffer.alloc(CLUSTER);
    h.write('QFI\xfb', 0, 'latin1');
    h.writeUInt32BE(3, 4); // version
    // 8: backing file offset, 16: its size: none
    h.writeUInt32BE(CLUSTER_BITS, 20);
    h.writeBigUInt64BE(BigInt(size), 24);
    // 32: crypt method none
    h.writeUInt32BE(l1Size, 36);
    h.writeBigUInt64BE(BigInt(l1Offset), 40);
    h.writeBigUInt64BE(BigInt(tableOffset), 48);
    h.writeUInt32BE(tableClusters, 56);
    // 60: no snapshots; 72, 80, 88: incompatible, compatible, autoclear features all 0
    h.writeUInt32BE(REFCOUNT_ORDER, 96);
    h.writeUInt32BE(HEADER_LENGTH, 100);
    // Then the header extension area: a zero type ends it at once.
    await file.write(0, h);
  }

  return containerTarget({ format: 'qcow2', file, size, write: blocks.write, complete });
}
