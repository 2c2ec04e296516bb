/**
 * A one-line progress display for long writes: bytes done (of the total when known), rate, elapsed.
 * Hand-written: one redrawn line on stderr needs no dependency (listr2/ora bring task trees and spinners).
 * Draws at most ten times a second and only at a terminal; elsewhere it is silent.
 */
import type { Writable } from 'node:stream';

export interface ProgressOptions {
  stream: Writable;
  /** Draw at all: stderr is a terminal (CliContext.interactive). */
  enabled: boolean;
  label: string;
  /** Expected total bytes, when known. */
  total?: number | undefined;
  /** Clock, for tests (milliseconds). */
  now?: () => number;
}

export interface Progress {
  /** Bytes done so far; `total` sets or revises the expected total. */
  update(bytes: number, total?: number): void;
  /** Draws the final state and ends the line (or erases it with `clear`). */
  done(opts?: { clear?: boolean }): void;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

const BAR_WIDTH = 24;

export function formatProgress(label: string, bytes: number, elapsedMs: number, total?: number): string {
  // A total may be an estimate (a disk writes metadata beyond its files' bytes): never past 100%.
  const fraction = total ? Math.min(1, bytes / total) : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  const done = total
    ? `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${formatBytes(bytes)} / ${formatBytes(total)} ${Math.floor(fraction * 100)}%`
    : formatBytes(bytes);
  const rate = elapsedMs > 0 ? `${formatBytes(Math.round((bytes * 1000) / elapsedMs))}/s` : '';
  return `${label} ${done}  ${rate}  ${formatElapsed(elapsedMs)}`;
}

export function createProgress(opts: ProgressOptions): Progress {
  const now = opts.now ?? Date.now;
  const start = now();
  let last = -Infinity;
  let bytes = 0;
  let total = opts.total;
  const draw = () => {
    opts.stream.write(`\r${formatProgress(opts.label, bytes, now() - start, total)}\x1b[K`);
  };
  return {
    update(n, newTotal) {
      bytes = n;
      if (newTotal !== undefined) total = newTotal;
      if (!opts.enabled) return;
      const t = now();
      if (t - last < 100) return;
      last = t;
      draw();
    },
    done(o = {}) {
      if (!opts.enabled) return;
      if (o.clear) opts.stream.write('\r\x1b[K');
      else {
        draw();
        opts.stream.write('\n');
      }
    },
  };
}
