// The DiskTarget shell every container shares: write-after-finish guard, finish() that completes the
// container's tables and headers then closes (no fsync: src/disk/raw-target.ts, NO_FSYNC), abort() that
// closes without finishing.
import type { OutputFile } from './file.js';
import type { DiskTarget } from './index.js';

/**
 * The DiskTarget around a container file: writes go to `write`; finish() runs `complete` (tables,
 * headers), then closes; abort() closes without finishing. Either runs once.
 */
export function containerTarget(o: {
  format: DiskTarget['format'];
  file: OutputFile;
  size: number;
  write: (offset: number, data: Buffer) => Promise<void>;
  complete: () => Promise<void>;
  /** Extra clean-up on abort (scratch files). */
  cleanup?: () => Promise<void>;
}): DiskTarget {
  let state: 'open' | 'finishing' | 'done' = 'open';
  return {
    format: o.format,
    path: o.file.path,
    size: o.size,
    write(offset, data) {
      if (state !== 'open') throw new Error('internal error: write after finish');
      return o.write(offset, data);
    },
    async finish() {
      if (state !== 'open') return;
      state = 'finishing';
      try {
        await o.complete();
        await o.file.close();
      } catch (err) {
        await o.file.close(false).catch(() => {});
        await o.cleanup?.().catch(() => {});
        throw err;
      } finally {
        state = 'done';
      }
    },
    async abort() {
      if (state === 'done') return;
      state = 'done';
      await o.file.close(false).catch(() => {});
      await o.cleanup?.().catch(() => {});
    },
  };
}
