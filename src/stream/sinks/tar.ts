/**
 * The tar sink: an entry stream out as a POSIX pax archive on any Writable.
 *
 * Speed: headers and small files are packed into 1 MiB batches so a tree of many small files costs one
 * `write` per megabyte rather than a few per file; large content chunks go out as they come. Memory stays
 * at about two batches plus whatever the Writable buffers up to its high-water mark (backpressure is
 * awaited), whatever the size of the image.
 */
import { write, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { CloudletsError } from '../../errors.js';
import { BLOCK, RECORD } from '../../tar/header.js';
import { prepareHeader } from '../../tar/pax-writer.js';
import { asBatch, type Entry, type EntryStream } from '../entry.js';

/**
 * Where the archive goes: any Writable, or a file descriptor. The descriptor is the fast path for a file
 * output: with a source that reads synchronously too, a file's bytes go from the source into a batch
 * buffer and out with no promise, allocation or copy per chunk, as `tar` does. With `position` (a regular
 * file, written from that offset on) each full batch is written by the thread pool while the next one is
 * read, a few batches in flight; without it, writes are synchronous (a pipe, a terminal).
 */
export type TarOutput = Writable | { fd: number; position?: number | undefined };

/** Batches a positional output may have on their way to the file at once. */
const MAX_INFLIGHT = 3;

export interface WriteTarOptions {
  /** Clamp every mtime to at most this (nanoseconds since the epoch): SOURCE_DATE_EPOCH semantics. */
  mtimeClampNs?: bigint | undefined;
  /** Called after each write with the archive bytes written so far and the file content bytes done. */
  onProgress?: ((progress: { bytes: number; contentBytes: number; entries: number }) => void) | undefined;
  /** Stops between writes when aborted; the promise rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

export interface WriteTarResult {
  /** Members written (not counting pax extended headers). */
  entries: number;
  /** Archive bytes written, end-of-archive blocks and record padding included. */
  bytes: number;
  /** Sockets left out: a tar archive cannot hold them. */
  skipped: number;
}

const BATCH = 1 << 20;
/** Content chunks at least this big are written as they are rather than copied into a batch. */
const DIRECT = 256 << 10;

/** How often the synchronous path lets the event loop run, so that a signal can stop it. */
const YIELD_EVERY_BYTES = 32 << 20;

/** Resolves once `out` can take more, rejects if it fails or closes first. */
function drained(out: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new CloudletsError('EOUTPUT', `writing the archive failed: ${err.message}`, { cause: err }));
    };
    const onClose = () => {
      cleanup();
      reject(new CloudletsError('EOUTPUT', 'the output closed before the archive was complete'));
    };
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

/**
 * Writes `entries` (already in path order) as a pax archive to `out`. Does not end `out`: the caller
 * owns it (stdout stays open; a file is committed by its atomic output).
 *
 * To a descriptor with a synchronous source, a batch of entries is written with no await at all: every
 * step returns a promise only when there is something to wait for (a Writable's backpressure, the
 * periodic turn of the event loop), and the loop awaits only then.
 */
export async function writeTar(
  entries: EntryStream,
  out: TarOutput,
  opts: WriteTarOptions = {},
): Promise<WriteTarResult> {
  const fd = 'fd' in out && typeof out.fd === 'number' && !('write' in out) ? out.fd : undefined;
  const stream = fd === undefined ? (out as Writable) : undefined;
  let position = fd !== undefined && 'position' in out ? out.position : undefined;
  /** Positional writes under way, each handing its batch buffer back to `spare` when done. */
  const inflight: Promise<void>[] = [];
  const spare: Buffer[] = [];
  let writeFailure: unknown;
  let batch: Buffer = Buffer.allocUnsafe(BATCH);
  let used = 0;
  let bytes = 0;
  let contentBytes = 0;
  let count = 0;
  let skipped = 0;
  let sinceYield = 0;
  const headerOpts = { mtimeClampNs: opts.mtimeClampNs };

  const checkAbort = () => {
    if (opts.signal?.aborted) throw opts.signal.reason;
  };
  const writeFd = (fd: number, buf: Buffer) => {
    let done = 0;
    try {
      while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done);
    } catch (err) {
      throw new CloudletsError('EOUTPUT', `writing the archive failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
  };
  const sendToStream = async (w: Writable, buf: Buffer) => {
    if (w.destroyed || w.writableEnded) {
      throw new CloudletsError('EOUTPUT', 'the output closed before the archive was complete');
    }
    const ok = w.write(buf);
    opts.onProgress?.({ bytes, contentBytes, entries: count });
    if (!ok) await drained(w);
    checkAbort();
  };
  /** Starts writing `buf` at `at` on the thread pool; the buffer goes back to `spare` once written. */
  const writeAt = (fd: number, buf: Buffer, at: number, owner: Buffer | undefined) =>
    new Promise<void>((resolve) => {
      const step = (done: number) => {
        if (done === buf.length) {
          if (owner) spare.push(owner);
          return resolve();
        }
        write(fd, buf, done, buf.length - done, at + done, (err, n) => {
          if (err) {
            writeFailure ??= new CloudletsError('EOUTPUT', `writing the archive failed: ${err.message}`, {
              cause: err,
            });
            return resolve();
          }
          step(done + n);
        });
      };
      step(0);
    });
  /** Waits until fewer than MAX_INFLIGHT (or, with `all`, no) positional writes are under way. */
  const settle = async (all = false) => {
    while (inflight.length > (all ? 0 : MAX_INFLIGHT - 1)) await inflight.shift();
    if (writeFailure !== undefined) throw writeFailure;
  };
  /** Writes `buf`; a promise only when the caller has to wait. `owner`: the batch buffer it views. */
  const send = (buf: Buffer, owner?: Buffer): Promise<void> | undefined => {
    bytes += buf.length;
    if (fd === undefined) return sendToStream(stream!, buf);
    if (position !== undefined) {
      inflight.push(writeAt(fd, buf, position, owner));
      position += buf.length;
      opts.onProgress?.({ bytes, contentBytes, entries: count });
      checkAbort();
      return inflight.length >= MAX_INFLIGHT || writeFailure !== undefined ? settle() : undefined;
    }
    writeFd(fd, buf);
    opts.onProgress?.({ bytes, contentBytes, entries: count });
    checkAbort();
    sinceYield += buf.length;
    if (sinceYield < YIELD_EVERY_BYTES) return undefined;
    sinceYield = 0;
    return new Promise<void>((resolve) => setImmediate(resolve)).then(checkAbort);
  };
  const flush = (): Promise<void> | undefined => {
    if (used === 0) return undefined;
    const full = batch.subarray(0, used);
    const owner = batch;
    // A Writable may keep a reference until written out, so its flushed batch is never reused; a
    // positional write hands it back when done; a synchronous write is done with it when it returns.
    if (fd === undefined) batch = Buffer.allocUnsafe(BATCH);
    else if (position !== undefined) batch = spare.pop() ?? Buffer.allocUnsafe(BATCH);
    used = 0;
    return send(full, owner);
  };
  /** Zeros into the batch; a promise only when a full batch had to be written on the way. */
  const zeros = async (n: number) => {
    while (n > 0) {
      if (used === BATCH) await flush();
      const k = Math.min(n, BATCH - used);
      batch.fill(0, used, used + k);
      used += k;
      n -= k;
    }
  };
  /** Content from an asynchronous source (a rendered template, an archive's member). */
  const appendChunks = async (entry: Entry): Promise<number> => {
    let done = 0;
    for await (const chunk of entry.content!()) {
      done += chunk.length;
      if (done > entry.size) break;
      if (chunk.length >= DIRECT) {
        await flush();
        await send(chunk);
      } else {
        if (used + chunk.length > BATCH) await flush();
        used += chunk.copy(batch, used);
      }
    }
    return done;
  };

  const writeEntries = async (): Promise<void> => {
    for await (const item of entries) {
      for (const entry of asBatch(item)) {
        checkAbort();
        if (entry.type === 'socket') {
          skipped++;
          continue;
        }
        const header = prepareHeader(entry, headerOpts);
        if (used + header.size > BATCH) {
          const wait = flush();
          if (wait) await wait;
        }
        if (header.size > BATCH) {
          const big = Buffer.alloc(header.size); // a pax header above 1 MiB: huge xattrs
          header.writeTo(big, 0);
          await send(big);
        } else {
          batch.fill(0, used, used + header.size);
          header.writeTo(batch, used);
          used += header.size;
        }
        count++;
        if (entry.type !== 'file' || entry.size === 0) continue;
        if (!entry.content) {
          throw new CloudletsError('ESOURCE', 'the source gave no content for a non-empty file', {
            where: entry.path.toString('utf8'),
          });
        }
        const size = entry.size;
        let done = 0;
        if (entry.openContentSync) {
          // Read straight into the batch.
          const reader = entry.openContentSync();
          let complete = false;
          try {
            while (done < size) {
              if (used === BATCH) {
                const wait = flush();
                if (wait) await wait;
              }
              const n = reader.read(batch, used, Math.min(BATCH - used, size - done), done);
              if (n === 0) break;
              used += n;
              done += n;
            }
            complete = true;
          } finally {
            reader.close(complete ? done : -1);
          }
        } else {
          done = await appendChunks(entry);
        }
        if (done !== size) {
          throw new CloudletsError(
            'ESOURCE',
            `the file changed while it was read: ${done > size ? 'more' : done} bytes where ${size} were listed`,
            { where: entry.path.toString('utf8') },
          );
        }
        contentBytes += done;
        const pad = (BLOCK - (size % BLOCK)) % BLOCK;
        if (used + pad <= BATCH) {
          batch.fill(0, used, used + pad);
          used += pad;
        } else {
          await zeros(pad);
        }
      }
    }
    // End of archive: two zero blocks, then zeros up to a whole 10240-byte record as GNU tar writes.
    const total = bytes + used + 2 * BLOCK;
    await zeros(2 * BLOCK + ((RECORD - (total % RECORD)) % RECORD));
    await flush();
    await settle(true);
  };

  try {
    await writeEntries();
  } finally {
    // No write may still be under way when the caller closes the descriptor (its number is reused).
    await Promise.allSettled(inflight);
  }
  return { entries: count, bytes, skipped };
}
