/**
 * Buffers whose memory has been touched already, by another thread.
 *
 * A fresh buffer's memory is mapped on first touch, a page fault per 4 KiB; on a VM whose host hands the
 * guest's free memory back, each costs some 10 us (measured here: 100 MB touched in ~290 ms). A disk
 * build fills a few 1 MiB stage buffers with file content on its main thread, ~1,000 such faults there,
 * and its inode tables' slabs, ~500 more for 8,000 files.
 * Warmed beforehand by reading /dev/zero into them on libuv's thread pool (idle while the build reads the
 * tree), the faults are taken by the pool's thread, on another core.
 *
 * A buffer is offered only once its read has completed: nothing else can be writing into it then.
 */
import { open } from 'node:fs/promises';

const pools = new Map<number, Buffer[]>();

/** A buffer of `size` bytes (contents unspecified), warmed if one is ready, else a new one. */
export function takeBuffer(size: number): Buffer {
  return pools.get(size)?.pop() ?? Buffer.allocUnsafe(size);
}

/** A buffer of `size` zero bytes: a warmed one (read from /dev/zero, never handed out before), else a new one. */
export function takeZeroedBuffer(size: number): Buffer {
  return pools.get(size)?.pop() ?? Buffer.alloc(size);
}

/**
 * Warms `count` buffers of `size` bytes for takeBuffer and takeZeroedBuffer (read from /dev/zero, they
 * hold zeros). Resolves when they are ready; never rejects (a system without /dev/zero, or a failed read,
 * leaves the pool as it was: the take functions allocate).
 */
export async function warmBuffers(count: number, size: number): Promise<void> {
  let zero: Awaited<ReturnType<typeof open>> | undefined;
  try {
    zero = await open('/dev/zero', 'r');
    for (let i = 0; i < count; i++) {
      // Not Buffer.allocUnsafe: a small one may be a slice of Node's shared pool, touched already.
      const buf = Buffer.allocUnsafeSlow(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await zero.read(buf, done, size - done, null);
        if (bytesRead === 0) return;
        done += bytesRead;
      }
      const pool = pools.get(size) ?? [];
      pool.push(buf);
      pools.set(size, pool);
    }
  } catch {
    // Best effort: the buffers are allocated when taken.
  } finally {
    await zero?.close().catch(() => {});
  }
}

/** How many warmed buffers of `size` bytes are ready. */
export function warmedCount(size: number): number {
  return pools.get(size)?.length ?? 0;
}

/** Drops the warmed buffers not taken (a build that ended leaves none for the next one to rely on). */
export function releaseBuffers(): void {
  pools.clear();
}
