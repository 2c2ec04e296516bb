import { describe, expect, it } from 'vitest';
import type { ResolveStat } from './resolve.js';
import { resolveImagePath } from './resolve.js';

const tree: Record<string, ResolveStat> = {
  '/': { type: 'dir' },
  '/etc': { type: 'dir' },
  '/etc/hostname': { type: 'file' },
  '/etc/abs': { type: 'symlink', linkTarget: Buffer.from('/etc/hostname') },
  '/etc/rel': { type: 'symlink', linkTarget: Buffer.from('./hostname') },
  '/etc/up': { type: 'symlink', linkTarget: Buffer.from('../../x') },
  '/etc/self': { type: 'symlink', linkTarget: Buffer.from('self') },
  '/etc/empty': { type: 'symlink', linkTarget: Buffer.alloc(0) },
  '/lib': { type: 'symlink', linkTarget: Buffer.from('usr/lib') },
  '/usr': { type: 'dir' },
  '/usr/lib': { type: 'dir' },
  '/usr/lib/os-release': { type: 'file' },
};
const fs = { lstat: (p: Buffer) => tree[p.toString()] };
const resolved = async (p: string, opts = {}) => (await resolveImagePath(fs, p, opts))?.path.toString();

describe('resolveImagePath', () => {
  it('follows absolute and relative symlinks from the image root', async () => {
    expect(await resolved('/etc/abs')).toBe('/etc/hostname');
    expect(await resolved('etc/rel')).toBe('/etc/hostname');
    expect(await resolved('/lib/os-release')).toBe('/usr/lib/os-release');
    // `..` after a symlink goes up from where the link led, as the kernel does.
    expect(await resolved('/lib/../lib/./os-release')).toBe('/usr/lib/os-release');
    expect(await resolved('/lib/../etc/hostname')).toBeUndefined();
    expect(await resolved('/')).toBe('/');
  });

  it('does not follow a final symlink when asked not to', async () => {
    const r = await resolveImagePath(fs, '/etc/abs', { followLast: false });
    expect(r).toEqual({ path: Buffer.from('/etc/abs'), stat: tree['/etc/abs'] });
  });

  it('returns undefined for what is missing or not a directory on the way', async () => {
    expect(await resolved('/nope')).toBeUndefined();
    expect(await resolved('/etc/hostname/x')).toBeUndefined();
    expect(await resolved('/etc/empty')).toBeUndefined();
  });

  it('refuses climbing above the root and link loops, naming the path', async () => {
    await expect(resolved('/etc/up')).rejects.toMatchObject({ code: 'EPATH', where: '/etc/up' });
    await expect(resolved('/../etc/hostname')).rejects.toMatchObject({ code: 'EPATH' });
    await expect(resolved('/etc/self')).rejects.toMatchObject({
      code: 'EPATH',
      message: expect.stringMatching(/40/),
    });
    await expect(resolved('/etc/self', { maxLinks: 3 })).rejects.toThrow(/more than 3/);
  });
});
