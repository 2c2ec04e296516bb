import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MIN_RELEASE_BYTES, releaseCachedPages } from './page-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-page-cache-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bytes of `path` in the page cache, by util-linux's fincore. */
function cachedBytes(path: string): number {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fincore: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/**
 * Most of `bytes`: the kernel may reclaim a few pages of any file at any time (CI's run lost 2 MiB of 64
 * while other tests ran), so "left alone" means far above what a release leaves (under 1/16).
 */
function mostOf(bytes: number): number {
  return (bytes * 3) / 4;
}

/** A file of `bytes`, written and read back so that all of it is cached. */
function cachedFile(name: string, bytes: number): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(bytes, 0x5a));
  readFileSync(path);
  return path;
}

describe('releaseCachedPages', () => {
  it("drops a large file's cached pages and leaves its content", async () => {
    const path = cachedFile('large.img', MIN_RELEASE_BYTES);
    // Written pages must be on disk before the kernel lets them go.
    spawnSync('sync', [path]);
    expect(cachedBytes(path)).toBeGreaterThan(mostOf(MIN_RELEASE_BYTES));
    await releaseCachedPages(path);
    expect(cachedBytes(path)).toBeLessThan(MIN_RELEASE_BYTES / 16);
    const back = readFileSync(path);
    expect(back.length).toBe(MIN_RELEASE_BYTES);
    expect(back.every((b) => b === 0x5a)).toBe(true);
  });

  it('leaves a small file, a directory and a missing path alone', async () => {
    const small = cachedFile('small.img', 1024 * 1024);
    await releaseCachedPages(small);
    expect(cachedBytes(small)).toBeGreaterThan(mostOf(1024 * 1024));
    await expect(releaseCachedPages(dir)).resolves.toBeUndefined();
    await expect(releaseCachedPages(join(dir, 'missing'))).resolves.toBeUndefined();
  });

  it('does nothing, and does not fail, without dd', async () => {
    const path = cachedFile('no-dd.img', MIN_RELEASE_BYTES);
    spawnSync('sync', [path]);
    const saved = process.env.PATH;
    process.env.PATH = join(dir, 'no-such-bin');
    try {
      await expect(releaseCachedPages(path)).resolves.toBeUndefined();
    } finally {
      process.env.PATH = saved;
    }
    expect(cachedBytes(path)).toBeGreaterThan(mostOf(MIN_RELEASE_BYTES));
  });
});
