// VMDK streamOptimized (VMware "Virtual Disk Format 5.0", stream-optimized compressed sparse extent):
// the header (grain directory "at end"), the descriptor, then the grains in ascending LBA order, each a
// marker (LBA, compressed size) and its deflated data padded to a sector; after the last grain of each
// 32 MiB span its grain table (GT marker + table); then the grain directory (GD marker + directory),
// the footer (a copy of the header that points at the directory) and the end-of-stream marker. This is
// the layout ESXi's OVF import and VirtualBox expect, and it is written strictly front to back.
//
// A stream cannot go back to change a grain, but the ext4 writer writes file data first and then goes
// back over its metadata from the start. So writes are first kept in a spill store: a sparse temporary
// file beside the output ("<output>.spill", same directory, removed afterwards), at the same offsets
// as on the disk, so unwritten regions cost nothing and memory stays flat whatever the disk size (the
// page cache holds what it can). Which grains were written is tracked per grain. finish() then reads
// the written grains in LBA order, deflates them on a worker-thread pool, and writes the stream.
import { unlinkSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { CloudletsError } from '../errors.js';
import { containerTarget } from './container.js';
import { createDeflatePool } from './deflate-pool.js';
import { isZero, openOutputFile } from './file.js';
import type { DiskTarget, DiskTargetOptions } from './index.js';
import { sparseBlocks } from './sparse.js';
import {
  FLAG_COMPRESSED,
  FLAG_MARKERS,
  GD_AT_END,
  GRAIN,
  GRAIN_SECTORS,
  GT_SECTORS,
  GTES_PER_GT,
  SECTOR,
  vmdkDescriptor,
  vmdkHeader,
} from './vmdk.js';

const MARKER_EOS = 0;
const MARKER_GT = 1;
const MARKER_GD = 2;
const MARKER_FOOTER = 3;
const BATCH_GRAINS = 16; // grains per job sent to a worker (1 MiB)
const OUT_CHUNK = 4 * 1024 * 1024; // output is written in chunks of about this size

export async function openVmdkStreamTarget(
  path: string,
  size: number,
  opts: DiskTargetOptions,
): Promise<DiskTarget> {
  const spillPath = `${path}.spill`;
  const spill = await openOutputFile(spillPath);
  const removeSpill = () => {
    try {
      unlinkSync(spillPath);
    } catch {}
  };
  // A signal handler that exits the process skips every finally: remove the spill file then too.
  process.once('exit', removeSpill);
  const dropSpill = async () => {
    process.removeListener('exit', removeSpill);
    await spill.close(false).catch(() => {});
    await unlink(spillPath).catch(() => {});
  };
  let file: Awaited<ReturnType<typeof openOutputFile>>;
  try {
    file = await openOutputFile(path);
  } catch (err) {
    await dropSpill();
    throw err;
  }
  // Identity placement: grain i lives at its own offset in the spill file.
  const written = sparseBlocks({ file: spill, size, blockSize: GRAIN, allocate: (i) => i * GRAIN });

  const capacitySectors = Math.ceil(size / SECTOR);
  const grains = Math.ceil(size / GRAIN);
  const gtCount = Math.ceil(grains / GTES_PER_GT);
  const gdSectors = Math.ceil((gtCount * 4) / SECTOR);
  const overheadSectors = GRAIN_SECTORS; // header + descriptor, padded to a grain

  async function complete(): Promise<void> {
    written.seal();
    const indices = [...written.entries()].map(([i]) => i).sort((a, b) => a - b);
    const out = streamWriter(file);
    const header = (gdOffset: bigint) =>
      vmdkHeader({
        capacitySectors,
        flags: FLAG_COMPRESSED | FLAG_MARKERS,
        rgdOffset: 0,
        gdOffset,
        overheadSectors,
        compressed: true,
      });
    out.put(header(GD_AT_END));
    const name = opts.name ?? basename(path);
    out.put(
      vmdkDescriptor({
        createType: 'streamOptimized',
        capacitySectors,
        name,
        seed: opts.seed,
        adapter: opts.vmdkAdapter,
      }),
    );
    out.padTo(overheadSectors * SECTOR);

    const gd = Buffer.alloc(gdSectors * SECTOR);
    let gt: Buffer | undefined;
    let gtIndex = -1;
    const flushGt = () => {
      if (!gt) return;
      gd.writeUInt32LE(out.sector + 1, gtIndex * 4);
      out.put(marker(GT_SECTORS, MARKER_GT));
      out.put(gt);
      gt = undefined;
    };

    const pool = createDeflatePool();
    try {
      // Read and compress ahead, up to `depth` batches, while writing the oldest in order.
      const depth = 2 * availableParallelism();
      const pending: Array<Promise<{ index: number[]; data: Buffer[] }>> = [];
      let at = 0;
      const startBatch = () => {
        const batch = indices.slice(at, at + BATCH_GRAINS);
        at += batch.length;
        const job = (async () => {
          // One buffer per batch, handed over to the worker as it is.
          const buf = Buffer.alloc(batch.length * GRAIN);
          const keep: number[] = [];
          for (const i of batch) {
            const slot = buf.subarray(keep.length * GRAIN, (keep.length + 1) * GRAIN);
            await spill.read(i * GRAIN, slot);
            if (!isZero(slot)) keep.push(i); // else rewritten with zeros since: the slot is reused
          }
          const ab = (
            keep.length === batch.length ? buf.buffer : buf.buffer.slice(0, keep.length * GRAIN)
          ) as ArrayBuffer;
          const data = keep.length ? await pool.deflate(ab, GRAIN) : [];
          return { index: keep, data };
        })();
        // Awaited in order below; a failure of one not yet reached must not count as unhandled.
        job.catch(() => {});
        pending.push(job);
      };
      while (at < indices.length && pending.length < depth) startBatch();
      while (pending.length > 0) {
        if (opts.signal?.aborted)
          throw new CloudletsError('EINTERRUPTED', 'interrupted', { where: opts.name ?? path });
        const { index, data } = await pending.shift()!;
        if (at < indices.length) startBatch();
        for (let k = 0; k < index.length; k++) {
          const i = index[k]!;
          const g = Math.floor(i / GTES_PER_GT);
          if (g !== gtIndex) {
            flushGt();
            gtIndex = g;
            gt = Buffer.alloc(GT_SECTORS * SECTOR);
          }
          gt!.writeUInt32LE(out.sector, (i % GTES_PER_GT) * 4);
          const c = data[k]!;
          const m = Buffer.alloc(12);
          m.writeBigUInt64LE(BigInt(i * GRAIN_SECTORS), 0);
          m.writeUInt32LE(c.length, 8);
          out.put(m);
          out.put(c);
          out.padTo(Math.ceil(out.position / SECTOR) * SECTOR);
        }
        await out.flushIfFull();
      }
    } finally {
      await pool.close();
    }
    flushGt();
    const gdSector = out.sector + 1;
    out.put(marker(gdSectors, MARKER_GD));
    out.put(gd);
    out.put(marker(1, MARKER_FOOTER));
    out.put(header(BigInt(gdSector)));
    out.put(marker(0, MARKER_EOS));
    await out.flush();
    await dropSpill();
  }

  return containerTarget({
    format: 'vmdk',
    file,
    size,
    write: written.write,
    complete,
    cleanup: dropSpill,
  });
}

/** A metadata marker: a sector holding the size in sectors of what follows, 0, and the type. */
function marker(sectors: number, type: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  m.writeBigUInt64LE(BigInt(sectors), 0);
  m.writeUInt32LE(type, 12);
  return m;
}

/** Appends to the output front to back, in chunks. */
function streamWriter(file: { writev(offset: number, parts: Buffer[]): Promise<void> }) {
  let chunks: Buffer[] = [];
  let buffered = 0;
  let flushedTo = 0;
  const w = {
    get position() {
      return flushedTo + buffered;
    },
    get sector() {
      return (flushedTo + buffered) / SECTOR;
    },
    put(b: Buffer) {
      chunks.push(b);
      buffered += b.length;
    },
    padTo(offset: number) {
      const n = offset - w.position;
      if (n > 0) w.put(Buffer.alloc(n));
    },
    async flush() {
      if (buffered === 0) return;
      const parts = chunks;
      chunks = [];
      await file.writev(flushedTo, parts);
      flushedTo += buffered;
      buffered = 0;
    },
    async flushIfFull() {
      if (buffered >= OUT_CHUNK) await w.flush();
    },
  };
  return w;
}
