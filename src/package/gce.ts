// The Compute Engine image archive: `disk.raw` in a gzip-compressed GNU tar, the raw disk stored as an
// oldgnu sparse member — what `tar --format=oldgnu -Sczf image.tar.gz disk.raw` makes, and what GCE's
// image import documents. Streamed from the raw disk: its holes are found by reading (Node has no
// SEEK_HOLE), the way GNU tar -S does without it: every all-zero 512-byte block is a hole.
import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { CloudletsError } from '../errors.js';
import { openAtomicOutput } from '../util/atomic-output.js';
import { BLOCK, oldGnuSparseHeaders, padding, type Region, trailer } from './tar-header.js';

/** The one member name GCE's importer accepts. */
export const GCE_MEMBER = 'disk.raw';
const CHUNK = 1 << 20;

/**
 * The data regions of a file (runs of 512-byte blocks that are not all zeros), as GNU tar's sparse map:
 * when the file ends in a hole, a final zero-length region at its end records its size.
 */
export async function scanDataRegions(
  path: string,
  signal?: AbortSignal,
): Promise<{ size: number; map: Region[] }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const map: Region[] = [];
    const zeros = Buffer.alloc(CHUNK);
    const buf = Buffer.alloc(CHUNK);
    let run: Region | undefined;
    for (let pos = 0; pos < size; ) {
      if (signal?.aborted) throw new CloudletsError('EINTERRUPTED', 'interrupted', { where: path });
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, size - pos), pos);
      if (bytesRead === 0) break;
      // A whole chunk of zeros is the common case (holes): one comparison instead of 2048.
      const whole = buf.subarray(0, bytesRead).equals(zeros.subarray(0, bytesRead));
      for (let at = 0; at < bytesRead; at += BLOCK) {
        const end = Math.min(at + BLOCK, bytesRead);
        const zero = whole || buf.subarray(at, end).equals(zeros.subarray(0, end - at));
        if (zero) {
          if (run) map.push(run);
          run = undefined;
          if (whole) break;
        } else if (run) run.length += end - at;
        else run = { offset: pos + at, length: end - at };
      }
      pos += bytesRead;
    }
    if (run) map.push(run);
    else map.push({ offset: size, length: 0 });
    return { size, map };
  } finally {
    await fh.close();
  }
}

export interface GceArchiveOptions {
  /** Member modification time, seconds since the epoch. */
  mtime: number;
  force?: boolean;
  signal?: AbortSignal | undefined;
}

export interface GceArchiveResult {
  output: string;
  /** The disk's size, as GNU tar lists `disk.raw`. */
  diskSize: number;
  /** Bytes of data stored (the rest are holes). */
  dataBytes: number;
  regions: number;
}

/** Writes `output` (replaced atomically) from the raw disk `rawDisk`; no second full-size copy. */
export async function writeGceArchive(
  rawDisk: string,
  output: string,
  o: GceArchiveOptions,
): Promise<GceArchiveResult> {
  const { size, map } = await scanDataRegions(rawDisk, o.signal);
  const dataBytes = map.reduce((n, r) => n + r.length, 0);
  const out = await openAtomicOutput(output, { force: o.force ?? false });
  try {
    const fh = await open(rawDisk, 'r');
    try {
      async function* archive(): AsyncGenerator<Buffer> {
        const head = oldGnuSparseHeaders({ name: GCE_MEMBER, realSize: size, map, mtime: o.mtime });
        yield head;
        for (const r of map) {
          for (let at = 0; at < r.length; at += CHUNK) {
            if (o.signal?.aborted) throw new CloudletsError('EINTERRUPTED', 'interrupted', { where: output });
            const n = Math.min(CHUNK, r.length - at);
            const buf = Buffer.alloc(n);
            let got = 0;
            while (got < n) {
              const { bytesRead } = await fh.read(buf, got, n - got, r.offset + at + got);
              if (bytesRead === 0) throw new Error(`internal error: ${rawDisk} shrank while archiving`);
              got += bytesRead;
            }
            yield buf;
          }
        }
        yield padding(dataBytes);
        yield trailer(head.length + dataBytes + padding(dataBytes).length);
      }
      // zlib's gzip header carries no name and mtime 0, as `gzip -n`: the archive is reproducible.
      // The stream stays open for commit(), which ends it and moves the file into place.
      await pipeline(archive, createGzip({ level: 6 }), out.stream as Writable, { end: false });
    } finally {
      await fh.close();
    }
    await out.commit();
  } catch (err) {
    await out.abort();
    if (err instanceof CloudletsError) throw err;
    throw new CloudletsError('EOUTPUT', `writing the GCE archive failed: ${(err as Error).message}`, {
      where: output,
      cause: err,
    });
  }
  return { output, diskSize: size, dataBytes, regions: map.filter((r) => r.length > 0).length };
}
