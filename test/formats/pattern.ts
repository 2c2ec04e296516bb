// A synthetic write pattern for the container format tests: sparse regions, partial writes into one
// cluster/grain/block in non-ascending order, regions written twice (once back to zeros), writes in
// flight together, all-zero writes into untouched space, and writes at both ends of the disk.
import { createHash } from 'node:crypto';
import type { BlockTarget } from '../../src/disk/target.js';

const KIB = 1024;
const MIB = 1024 * KIB;

/** Deterministic bytes: half random-looking, half text (so compression has something to do). */
export function bytes(length: number, tag: string): Buffer {
  const out = Buffer.alloc(length);
  let at = 0;
  let n = 0;
  while (at < length) {
    const h = createHash('sha256').update(`${tag}/${n++}`).digest();
    at += h.copy(out, at);
    if (at < length) at += out.write(`${tag} block ${n} `.repeat(4), at, 'latin1');
  }
  return out;
}

/** Deterministic incompressible bytes (a SHA-256 chain): VMDK stores such grains instead of deflating. */
export function noise(length: number, tag: string): Buffer {
  const out = Buffer.alloc(length);
  for (let at = 0, n = 0; at < length; n++)
    at += createHash('sha256').update(`${tag}#${n}`).digest().copy(out, at);
  return out;
}

export interface Op {
  offset: number;
  data: Buffer;
  /** Started together with the ops before it that are also `concurrent`, then awaited together. */
  concurrent?: boolean;
}

export const PATTERN_SIZE = 1024 * MIB;

export function pattern(size = PATTERN_SIZE): Op[] {
  const ops: Op[] = [];
  const put = (offset: number, length: number, tag: string, concurrent = false) =>
    ops.push({ offset, data: bytes(length, tag), concurrent });
  put(0, 4 * KIB, 'first');
  // Three 4 KiB pieces of one 64 KiB cluster, last one first.
  put(5 * MIB + 48 * KIB, 4 * KIB, 'c3');
  put(5 * MIB + 4 * KIB, 4 * KIB, 'c1');
  put(5 * MIB + 20 * KIB, 4 * KIB, 'c2');
  // A run across cluster, grain and block boundaries (2 MiB VHD blocks, 1 MiB VHDX/VDI blocks).
  put(2 * MIB - 6 * KIB, 3 * MIB + 10 * KIB, 'run');
  // Writes in flight together (the ext4 writer keeps several going).
  for (let i = 0; i < 8; i++) put(300 * MIB + i * 200 * KIB, 136 * KIB, `flight${i}`, true);
  // All-zero writes into untouched space: must allocate nothing.
  ops.push({ offset: 400 * MIB, data: Buffer.alloc(2 * MIB) });
  ops.push({ offset: 600 * MIB + 512, data: Buffer.alloc(4 * KIB) });
  // Going back to the start, as the ext4 writer's metadata pass does: rewrite parts of earlier writes.
  put(2 * KIB, 1 * KIB, 'again');
  put(5 * MIB + 20 * KIB, 4 * KIB, 'c2-again');
  ops.push({ offset: 300 * MIB + 8 * KIB, data: Buffer.alloc(64 * KIB) }); // back to zeros
  put(5 * MIB + 60 * KIB, 8 * KIB, 'straddle'); // the end of one cluster and the start of the next
  // A whole cluster written, then rewritten to zeros entirely.
  put(700 * MIB, 64 * KIB, 'gone');
  ops.push({ offset: 700 * MIB, data: Buffer.alloc(64 * KIB) });
  // Incompressible grains, one of them partly overwritten with text afterwards.
  ops.push({ offset: 800 * MIB, data: noise(256 * KIB, 'noise') });
  put(800 * MIB + 70 * KIB, 3 * KIB, 'over-noise');
  // The last sectors of the disk.
  put(size - 4 * KIB, 4 * KIB, 'last');
  put(size - 512, 512, 'last-sector');
  return ops;
}

/** Applies `ops` to `target` and finishes it. */
export async function apply(target: BlockTarget, ops: Op[]): Promise<void> {
  let batch: Promise<void>[] = [];
  for (const op of ops) {
    if (!op.concurrent && batch.length) {
      await Promise.all(batch);
      batch = [];
    }
    const p = target.write(op.offset, op.data);
    if (op.concurrent) batch.push(p);
    else await p;
  }
  await Promise.all(batch);
  await target.finish();
}
