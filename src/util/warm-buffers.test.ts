import { afterEach, describe, expect, it } from 'vitest';
import { releaseBuffers, takeBuffer, takeZeroedBuffer, warmBuffers, warmedCount } from './warm-buffers.js';

const SIZE = 256 * 1024;

describe('warm buffers', () => {
  afterEach(() => releaseBuffers());

  it('hands out the warmed buffers once their reads are done, then new ones', async () => {
    const warming = warmBuffers(2, SIZE);
    await warming;
    expect(warmedCount(SIZE)).toBe(2);
    const a = takeBuffer(SIZE);
    const b = takeBuffer(SIZE);
    expect(a).not.toBe(b);
    expect([a.length, b.length]).toEqual([SIZE, SIZE]);
    // Read from /dev/zero, and nothing writes into them once handed out.
    expect(a.equals(Buffer.alloc(SIZE))).toBe(true);
    a.fill(0xab);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(a.every((x) => x === 0xab)).toBe(true);
    expect(warmedCount(SIZE)).toBe(0);
    expect(takeBuffer(SIZE).length).toBe(SIZE);
  });

  it('hands out zeroed buffers, warmed ones first (an inode table slab must start all zero)', async () => {
    await warmBuffers(1, SIZE);
    const warmed = takeZeroedBuffer(SIZE);
    expect(warmedCount(SIZE)).toBe(0);
    const fresh = takeZeroedBuffer(SIZE);
    for (const b of [warmed, fresh]) expect(b.equals(Buffer.alloc(SIZE))).toBe(true);
    // Whatever a taken buffer holds later, the next one is zero again.
    warmed.fill(1);
    expect(takeZeroedBuffer(SIZE).every((x) => x === 0)).toBe(true);
  });

  it('offers nothing before a buffer is ready, and forgets what was not taken', async () => {
    const warming = warmBuffers(3, SIZE);
    expect(warmedCount(SIZE)).toBe(0);
    await warming;
    expect(warmedCount(SIZE)).toBe(3);
    releaseBuffers();
    expect(warmedCount(SIZE)).toBe(0);
  });
});
