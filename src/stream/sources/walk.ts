/**
 * The main thread's side of the directory walk (walk-worker.ts): starts the worker, decodes its chunks
 * into records, hands chunks back as they are decoded so the worker can go on, and turns a failed system
 * call into the error a synchronous walk would have thrown at the same point of the stream.
 */
import { readdirSync } from 'node:fs';
import { startEvalWorker } from '../../util/eval-worker.js';
import type { HostStat } from '../entry.js';
import { hostPaths, sourceErrorFromCode } from './host-file.js';
import { RECORD, WALK_CTRL, type WalkChunk, type WalkerData, walkerThread } from './walk-worker.js';

/**
 * One path of the walk: what lstat said (HostStat: mode, owner, size, times, inode) and more. Paths and
 * link targets are views into the chunk they came in.
 */
export interface WalkRecord extends HostStat {
  path: Buffer;
  nlink: number;
  mtimeNs: bigint;
  link: Buffer | undefined;
  /** Read only when needed (hardlinks, devices): each costs a BigInt. */
  dev(): bigint;
  ino(): bigint;
  rdev(): bigint;
  /** What hard links to one file share, and no other file does: see inodeKey. */
  inodeKey(): InodeKey;
}

/**
 * A file's identity on the host, for finding hard links. Almost always a number, dev and ino packed
 * exactly into a double (ino below 2^33, dev below 2^20): a Map keyed by numbers makes no string a path,
 * and a build asks it of every file whose link count is above one (every file, in a tree copied with
 * `cp -al`). Larger numbers give the text `dev:ino`, which no number equals.
 */
export type InodeKey = number | string;

const DEV_SPAN = 2 ** 20;
const INO_SPAN = 2 ** 33;

/** The key of `dev` and `ino`, given as numbers when they are exact (below 2^53), else as decimal text. */
export function inodeKey(dev: number | string, ino: number | string): InodeKey {
  if (typeof dev === 'number' && typeof ino === 'number' && dev < DEV_SPAN && ino < INO_SPAN) {
    return ino * DEV_SPAN + dev;
  }
  return `${dev}:${ino}`;
}

export interface Walk {
  /** The next records in walk order; undefined at the end. Throws the walk's error where it happened. */
  next(): Promise<WalkRecord[] | undefined>;
  /** Stops the worker (at the end, or when the consumer stops early). */
  stop(): void;
  /**
   * The host path of a record's `path` (that very Buffer, as the walk gave it: find's listing holds the
   * host path around it). Needs no record, so that what reads a file later need not keep its record.
   */
  hostPath(path: Buffer): Buffer;
}

const CHUNK_BYTES = 64 << 10;
/** Chunks the worker may run ahead of the consumer: a few thousand entries. */
const MAX_CHUNKS = 32;

const WORKER_SOURCE = `(${walkerThread.toString()})(require);`;

/**
 * The names among the root's children that `prune` leaves out. Only the root's own children are asked:
 * the predicate cannot cross to the worker thread, and what it is for (the image's `.git`) is at the top.
 */
export function prunedRootNames(realRoot: string, prune: ((path: Buffer) => boolean) | undefined): string[] {
  if (!prune) return [];
  let names: Buffer[];
  try {
    names = readdirSync(realRoot, { encoding: 'buffer' });
  } catch {
    return []; // the walk reports it
  }
  return names
    .filter((name) => prune(Buffer.concat([Buffer.from('/'), name])))
    .map((name) => name.toString('latin1'));
}

export interface WalkOptions {
  /** Chunk size in bytes; default 64 KiB (tests make it small). */
  chunkBytes?: number;
  /** Chunks the worker may run ahead; default 32. */
  maxChunks?: number;
}

export function startWalk(realRoot: string, pruned: string[], opts: WalkOptions = {}): Walk {
  const ctrlBuffer = new SharedArrayBuffer(WALK_CTRL.LENGTH * 4);
  const ctrl = new Int32Array(ctrlBuffer);
  const workerData: WalkerData = {
    root: realRoot,
    pruned,
    ctrl: ctrlBuffer,
    chunkBytes: opts.chunkBytes ?? CHUNK_BYTES,
    maxChunks: opts.maxChunks ?? MAX_CHUNKS,
  };
  const worker = startEvalWorker(WORKER_SOURCE, { workerData });
  const queue: WalkChunk[] = [];
  let failure: Error | undefined;
  /** The walk's own error (a failed system call), due after the records before it. */
  let failed: Error | undefined;
  let wake: (() => void) | undefined;
  let ended = false;
  /** The worker sent its last chunk: its exit is the normal end. */
  let finished = false;
  worker.on('message', (chunk: WalkChunk) => {
    if (chunk.done || chunk.fatal !== undefined) finished = true;
    queue.push(chunk);
    wake?.();
  });
  worker.on('error', (err) => {
    failure = new Error(`the directory walk thread failed: ${err.message}`, { cause: err });
    wake?.();
  });
  worker.on('exit', () => {
    if (!finished && !ended) failure ??= new Error('the directory walk thread stopped early');
    wake?.();
  });

  const bump = () => {
    Atomics.add(ctrl, WALK_CTRL.MAIN_EVENT, 1);
    Atomics.notify(ctrl, WALK_CTRL.MAIN_EVENT);
  };

  return {
    async next() {
      for (;;) {
        // The paths walked before a failure go out first; the failure comes with the next call.
        if (failed) throw failed;
        const chunk = queue.shift();
        if (chunk) {
          if (chunk.fatal !== undefined) throw new Error(`the directory walk thread failed: ${chunk.fatal}`);
          if (chunk.done) ended = true;
          const { records, error } = decode(chunk);
          failed = error;
          // Decoded: the worker may fill another. (The records keep the chunk's memory alive, not its place.)
          Atomics.sub(ctrl, WALK_CTRL.OUTSTANDING, 1);
          bump();
          if (records.length > 0) return records;
          if (chunk.done && !failed) return undefined;
          continue; // an empty chunk, or the failure: thrown above
        }
        if (ended) return undefined;
        if (failure) throw failure;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    },
    hostPath: hostPaths(realRoot),
    stop() {
      ended = true;
      Atomics.store(ctrl, WALK_CTRL.STOP, 1);
      bump();
      void worker.terminate();
    },
  };
}

/** A decoded record; device and inode numbers are read from the chunk only when asked for. */
class DecodedRecord implements WalkRecord {
  constructor(
    readonly path: Buffer,
    readonly mode: number,
    readonly uid: number,
    readonly gid: number,
    readonly nlink: number,
    readonly size: number,
    readonly mtimeNs: bigint,
    readonly link: Buffer | undefined,
    private readonly view: DataView,
    private readonly fields: number,
  ) {}
  dev(): bigint {
    return this.view.getBigUint64(this.fields + 32, true);
  }
  ino(): bigint {
    return this.view.getBigUint64(this.fields + 40, true);
  }
  rdev(): bigint {
    return this.view.getBigUint64(this.fields + 48, true);
  }
  inodeKey(): InodeKey {
    // Both numbers as two 32-bit halves: exact as doubles while the high half is small, no BigInt.
    const small = (at: number): number | string => {
      const high = this.view.getUint32(at + 4, true);
      if (high >= 2 ** 21) return this.view.getBigUint64(at, true).toString();
      return high * 2 ** 32 + this.view.getUint32(at, true);
    };
    return inodeKey(small(this.fields + 32), small(this.fields + 40));
  }
  get mtimeSec(): number {
    return this.view.getFloat64(this.fields + 56, true);
  }
  get mtimeNsec(): number {
    return this.view.getUint32(this.fields + 64, true);
  }
  get ctimeSec(): number {
    return this.view.getFloat64(this.fields + 68, true);
  }
  get ctimeNsec(): number {
    return this.view.getUint32(this.fields + 76, true);
  }
  get inoLow32(): number {
    return this.view.getUint32(this.fields + 40, true);
  }
}

/** The records of one chunk, and the error that ended the walk when the chunk holds it. */
function decode(chunk: WalkChunk): { records: WalkRecord[]; error?: Error } {
  const records: WalkRecord[] = [];
  const bytes = Buffer.from(chunk.buffer, 0, chunk.used);
  const view = new DataView(chunk.buffer);
  let at = 0;
  const take = (): Buffer => {
    const n = view.getUint32(at, true);
    at += 4;
    const b = bytes.subarray(at, at + n);
    at += n;
    return b;
  };
  while (at < chunk.used) {
    const tag = bytes[at++];
    if (tag === RECORD.ERROR) {
      const path = take();
      const code = take().toString();
      return { records, error: sourceErrorFromCode(code, Buffer.from(path), take().toString()) };
    }
    const path = take();
    const fields = at;
    at += 80;
    const linkLength = view.getInt32(at, true);
    let link: Buffer | undefined;
    if (linkLength < 0) at += 4;
    else link = take();
    records.push(
      new DecodedRecord(
        path,
        view.getUint32(fields, true),
        view.getUint32(fields + 4, true),
        view.getUint32(fields + 8, true),
        view.getUint32(fields + 12, true),
        view.getFloat64(fields + 16, true),
        view.getBigInt64(fields + 24, true),
        link,
        view,
        fields,
      ),
    );
  }
  return { records };
}
