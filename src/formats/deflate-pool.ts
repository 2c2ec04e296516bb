// Deflate (zlib format, as VMDK grains want) spread over the cores: a pool of worker threads, each
// running node:zlib's deflateSync on batches of grains. Results come back as promises the caller awaits
// in submission order, so the output order is kept whatever order the workers finish in.
//
// The worker is a short CommonJS script given inline (`eval: true`) rather than a file beside this
// one: the same code then runs from dist/ and from the TypeScript sources under vitest.
//
// Memory: a batch travels as one ArrayBuffer each way, transferred rather than copied. A worker's own
// isolate would otherwise let up to V8's external-memory slack (tens of MiB) of dead output buffers pile
// up before collecting them, per worker; so the worker asks for a collection after each batch (its heap
// is tiny, this costs well under a millisecond). `gc` is reached through the documented V8 flag.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { startEvalWorker } from '../util/eval-worker.js';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { constants: Z, deflateSync } = require('node:zlib');
require('node:v8').setFlagsFromString('--expose-gc');
const collect = globalThis.gc || require('node:vm').runInNewContext('gc');
// What a grain holds decides how it is compressed, from its bytes counted once (every 7th):
//  - already-compressed content (archives, media, encrypted data) does not shrink, and deflating it costs
//    as much as deflating text: bytes as varied as random data (above 7.9 bits a byte) with hardly a zero
//    (under 3%, all deflate could take) are stored: a zlib stream of deflate "stored" blocks, written here
//    straight into the batch's output (node:zlib at level 0 would do the same, through two temporary
//    buffers a grain, which is what fills a worker's memory);
//  - such bytes with runs of zeros between them are what small compressed files give once laid out in
//    blocks (a file's last block ends in zeros): deflate's match search finds nothing in the random bytes
//    and spends most of its time there; matching runs only (Z_RLE) still takes the zero runs, for output
//    0.6% larger in 40% of the time (measured on the grains of the benchmark's disk);
//  - anything else is deflated as usual.
// Counting costs ~20 us a grain; the 3% test it replaces (four 2 KiB samples deflated at level 1) cost
// ~100 us, a new zlib state each time.
const STORE = 0;
const RUNS = 1;
const DEFLATE = 2;
const COUNTS = new Uint32Array(256);
function kindOf(g) {
  if (g.length < 16384) return DEFLATE;
  COUNTS.fill(0);
  for (let i = 0; i < g.length; i += 7) COUNTS[g[i]]++;
  const counted = Math.ceil(g.length / 7);
  const n = counted - COUNTS[0];
  if (n < 1024) return DEFLATE;
  let sum = 0;
  for (let b = 1; b < 256; b++) if (COUNTS[b] > 0) sum += COUNTS[b] * Math.log2(COUNTS[b]);
  const bits = Math.log2(n) - sum / n;
  if (bits > 7.9 && COUNTS[0] < 0.03 * counted) return STORE;
  return bits > 7.5 ? RUNS : DEFLATE;
}
const storedSize = (n) => 2 + 5 * Math.max(1, Math.ceil(n / 65535)) + n + 4;
function adler32(g) {
  let a = 1;
  let b = 0;
  for (let i = 0; i < g.length; ) {
    const end = Math.min(i + 5552, g.length); // the most bytes before the sums can overflow 2^32
    for (; i < end; i++) {
      a += g[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}
function writeStored(g, out, o) {
  out[o++] = 0x78; // deflate, 32 KiB window
  out[o++] = 0x01; // no dictionary, fastest; header checksum
  let at = 0;
  do {
    const n = Math.min(65535, g.length - at);
    out[o++] = at + n >= g.length ? 1 : 0; // BFINAL, BTYPE 00
    out[o++] = n & 0xff;
    out[o++] = n >>> 8;
    out[o++] = ~n & 0xff;
    out[o++] = (~n >>> 8) & 0xff;
    out.set(g.subarray(at, at + n), o);
    o += n;
    at += n;
  } while (at < g.length);
  const a = adler32(g);
  out[o++] = a >>> 24;
  out[o++] = (a >>> 16) & 0xff;
  out[o++] = (a >>> 8) & 0xff;
  out[o++] = a & 0xff;
  return o;
}
parentPort.on('message', ({ id, batch, grain, level }) => {
  try {
    const input = new Uint8Array(batch);
    const parts = []; // [data, stored]
    const sizes = [];
    for (let at = 0; at < input.length; at += grain) {
      const g = input.subarray(at, at + grain);
      const kind = kindOf(g);
      const stored = kind === STORE;
      const data = stored ? g : deflateSync(g, { level, strategy: kind === RUNS ? Z.Z_RLE : Z.Z_DEFAULT_STRATEGY });
      parts.push([data, stored]);
      sizes.push(stored ? storedSize(g.length) : data.length);
    }
    const out = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    let o = 0;
    for (const [data, stored] of parts) {
      if (stored) o = writeStored(data, out, o);
      else {
        out.set(data, o);
        o += data.length;
      }
    }
    parentPort.postMessage({ id, out: out.buffer, sizes }, [out.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message) });
  }
  collect();
});
`;

export interface DeflatePool {
  /**
   * Compresses each `grain`-byte piece of `batch` separately (the last may be shorter). `batch` is
   * transferred to the worker: the caller must not use it afterwards.
   */
  deflate(batch: ArrayBuffer, grain: number): Promise<Buffer[]>;
  close(): Promise<void>;
}

interface Job {
  id: number;
  batch: ArrayBuffer;
  grain: number;
  done: (out: Buffer[]) => void;
  fail: (err: Error) => void;
}

/** `size` workers (default: os.availableParallelism()); zlib `level` (default 6, zlib's and QEMU's). */
export function createDeflatePool(o: { size?: number; level?: number } = {}): DeflatePool {
  const size = Math.max(1, o.size ?? availableParallelism());
  const level = o.level ?? 6;
  const idle: Worker[] = [];
  const queue: Job[] = [];
  const running = new Map<Worker, Job>();
  let nextId = 0;
  let broken: Error | undefined;

  const dispatch = () => {
    while (idle.length > 0 && queue.length > 0) {
      const worker = idle.pop()!;
      const job = queue.shift()!;
      running.set(worker, job);
      worker.postMessage({ id: job.id, batch: job.batch, grain: job.grain, level }, [job.batch]);
    }
  };
  const workers = Array.from({ length: size }, () => {
    const w = startEvalWorker(WORKER_SOURCE);
    w.on('message', (msg: { id: number; out?: ArrayBuffer; sizes?: number[]; error?: string }) => {
      const job = running.get(w);
      running.delete(w);
      idle.push(w);
      if (job) {
        if (msg.error !== undefined) job.fail(new Error(`deflate failed: ${msg.error}`));
        else {
          const all = Buffer.from(msg.out!);
          let at = 0;
          job.done(
            msg.sizes!.map((n) => {
              at += n;
              return all.subarray(at - n, at);
            }),
          );
        }
      }
      dispatch();
    });
    w.on('error', (err) => {
      broken = err;
      running.get(w)?.fail(err);
      running.delete(w);
      for (const job of queue.splice(0)) job.fail(err);
    });
    idle.push(w);
    return w;
  });

  return {
    deflate(batch, grain) {
      if (broken) return Promise.reject(broken);
      return new Promise((done, fail) => {
        queue.push({ id: nextId++, batch, grain, done, fail });
        dispatch();
      });
    },
    async close() {
      for (const job of queue.splice(0)) job.fail(new Error('deflate pool closed'));
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
