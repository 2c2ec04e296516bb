import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pickScratchBase, scratchBase } from './scratch-dir.js';

const TMPFS_MAGIC = 0x01021994;
const isTmpfs = (dir: string) => {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
};
const shmIsTmpfs = isTmpfs('/dev/shm');
const savedTmp = process.env.TMPDIR;
afterEach(() => {
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
});

describe('scratchBase', () => {
  it('is a directory scratch files can be made in', () => {
    const dir = mkdtempSync(join(scratchBase(), 'cloudlets-scratch-test-'));
    rmSync(dir, { recursive: true });
  });

  it.skipIf(!shmIsTmpfs)('keeps a TMPDIR that is a tmpfs', () => {
    const own = mkdtempSync('/dev/shm/cloudlets-scratch-test-');
    try {
      process.env.TMPDIR = own;
      expect(scratchBase()).toBe(own);
    } finally {
      rmSync(own, { recursive: true });
    }
  });

  it.skipIf(!shmIsTmpfs || isTmpfs('/var/tmp'))(
    'takes /dev/shm over a TMPDIR on a disk (nothing to fsync)',
    () => {
      process.env.TMPDIR = '/var/tmp';
      expect(scratchBase()).toBe('/dev/shm');
    },
  );

  it('falls back to the temporary directory when neither is a writable tmpfs', () => {
    expect(pickScratchBase('/nonexistent-cloudlets-tmp', '/nonexistent-cloudlets-shm')).toBe(
      '/nonexistent-cloudlets-tmp',
    );
    expect(pickScratchBase('/nonexistent-cloudlets-tmp', '/proc')).toBe('/nonexistent-cloudlets-tmp');
  });
});
