// Allocation on first touch, shared by the sparse containers (qcow2, VMDK monolithicSparse, dynamic VHD,
// VHDX, VDI): the virtual disk is cut into fixed-size blocks; the first write with a non-zero byte in a
// block gives it the next place in the file, and every later write into that block, however partial,
// goes to the same place with a positional write. All-zero data never allocates (an unallocated block
// reads as zeros in every one of these formats). Allocation happens synchronously when write() is
// called, so the layout depends only on the order of the calls, not on I/O timing: deterministic even
// with writes in flight.
import { checkWrite, isZero, type OutputFile } from './file.js';

export interface SparseBlocks {
  /** Host offset of block `index`'s data, or undefined while it is unallocated. */
  get(index: number): number | undefined;
  /** Allocated blocks as [virtual index, host offset], in allocation order. */
  entries(): IterableIterator<[number, number]>;
  readonly allocated: number;
  write(offset: number, data: Uint8Array): Promise<void>;
  /** No write after this. */
  seal(): void;
}

export interface SparseBlocksOptions {
  file: OutputFile;
  /** Virtual size in bytes. */
  size: number;
  blockSize: number;
  /** Host offset for the data of a newly allocated block; called once per block, in order of first touch. */
  allocate: (index: number) => number;
}

export function sparseBlocks(o: SparseBlocksOptions): SparseBlocks {
  const map = new Map<number, number>();
  let sealed = false;
  return {
    get: (index) => map.get(index),
    entries: () => map.entries(),
    get allocated() {
      return map.size;
    },
    seal() {
      sealed = true;
    },
    write(offset, data) {
      checkWrite(o.size, offset, data, sealed);
      const writes: Promise<void>[] = [];
      // Pieces that land next to each other in the file too (blocks allocated in a row, as an ascending
      // writer gets) go out as one write: one system call per run, not per block.
      let runHost = -1;
      let runFrom = 0;
      let runTo = 0;
      const flush = () => {
        if (runTo > runFrom) writes.push(o.file.write(runHost, data.subarray(runFrom, runTo)));
      };
      let at = 0;
      while (at < data.length) {
        const pos = offset + at;
        const index = Math.floor(pos / o.blockSize);
        const within = pos - index * o.blockSize;
        const n = Math.min(o.blockSize - within, data.length - at);
        const from = at;
        at += n;
        let host = map.get(index);
        if (host === undefined) {
          if (isZero(data.subarray(from, from + n))) continue;
          host = o.allocate(index);
          map.set(index, host);
        }
        if (runTo === from && runTo > runFrom && runHost + (runTo - runFrom) === host + within) {
          runTo = at;
        } else {
          flush();
          runHost = host + within;
          runFrom = from;
          runTo = at;
        }
      }
      flush();
      if (writes.length === 1) return writes[0] as Promise<void>;
      return Promise.all(writes).then(() => {});
    },
  };
}
