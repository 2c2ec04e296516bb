import { describe, expect, it } from 'vitest';
import { type Entry, type EntryStream, eachEntry } from '../entry.js';
import { fileEntry, injectEntries, parentDirectories } from './inject.js';

const dir = (path: string, mode = 0o700): Entry => ({
  path: Buffer.from(path),
  type: 'dir',
  mode,
  uid: 5,
  gid: 5,
  mtimeNs: 1n,
  size: 0,
  xattrs: new Map(),
});

async function collect(entries: EntryStream): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of eachEntry(entries)) out.push(e);
  return out;
}

async function* from(entries: Entry[]): AsyncIterable<Entry> {
  yield* entries;
}

describe('injectEntries', () => {
  it('adds entries at their sorted places with missing parents, keeping existing parents as they are', async () => {
    const source = [dir('/'), dir('/.cloudlet'), dir('/etc'), dir('/etc/x')];
    const extra = [
      fileEntry('/.cloudlet/templates/etc/hostname', Buffer.from('<%= hostname %>'), {
        mode: 0o644,
        mtimeNs: 0n,
      }),
      ...parentDirectories('/.cloudlet/templates/etc/hostname', { mtimeNs: 0n }),
    ];
    const out = await collect(injectEntries(from(source), extra));
    expect(out.map((e) => e.path.toString())).toEqual([
      '/',
      '/.cloudlet',
      '/.cloudlet/templates',
      '/.cloudlet/templates/etc',
      '/.cloudlet/templates/etc/hostname',
      '/etc',
      '/etc/x',
    ]);
    // The image's own /.cloudlet keeps its metadata; only absent parents are synthesised.
    expect(out[1]!.mode).toBe(0o700);
    expect(out[2]!.mode).toBe(0o755);
    expect('ifAbsent' in out[2]!).toBe(false);
  });

  it('gives entries marked inheritMtime the time of the nearest directory above them', async () => {
    const source = [
      { ...dir('/'), mtimeNs: 7n },
      { ...dir('/.cloudlet'), mtimeNs: 9n },
      { ...dir('/etc'), mtimeNs: 3n },
    ];
    const meta = { mtimeNs: 0n, inheritMtime: true };
    const extra = [
      ...parentDirectories('/.cloudlet/t/x', meta),
      fileEntry('/.cloudlet/t/x', Buffer.from('x'), { ...meta, mode: 0o644 }),
      fileEntry('/z', Buffer.from('z'), { ...meta, mode: 0o644 }),
    ];
    const out = await collect(injectEntries(from(source), extra));
    expect(out.map((e) => [e.path.toString(), e.mtimeNs])).toEqual([
      ['/', 7n],
      ['/.cloudlet', 9n],
      ['/.cloudlet/t', 9n],
      ['/.cloudlet/t/x', 9n],
      ['/etc', 3n],
      ['/z', 7n],
    ]);
    expect(out.some((e) => 'inheritMtime' in e)).toBe(false);
  });

  it('merges the same way whatever batches the source comes in', async () => {
    const source = [dir('/'), dir('/a'), dir('/a/b'), dir('/c'), dir('/e'), dir('/g')];
    const extra = [
      fileEntry('/a/b/x', Buffer.from('x'), { mode: 0o644, mtimeNs: 0n, inheritMtime: true }),
      fileEntry('/d', Buffer.from('d'), { mode: 0o644, mtimeNs: 0n }),
      fileEntry('/h', Buffer.from('h'), { mode: 0o644, mtimeNs: 0n }),
    ];
    const oneByOne = await collect(injectEntries(from(source), extra));
    async function* pairs(): AsyncIterable<readonly Entry[]> {
      for (let i = 0; i < source.length; i += 2) yield source.slice(i, i + 2);
    }
    const batched = await collect(injectEntries(pairs(), extra));
    expect(batched.map((e) => e.path.toString())).toEqual([
      '/',
      '/a',
      '/a/b',
      '/a/b/x',
      '/c',
      '/d',
      '/e',
      '/g',
      '/h',
    ]);
    expect(batched).toEqual(oneByOne);
  });

  it('places an added /etc/fstab between its neighbours, by bytes', async () => {
    const source = ['/', '/bin', '/etc', '/etc/a', '/etc/g', '/usr'].map((p) => dir(p));
    const out = await collect(
      injectEntries(from(source), [fileEntry('/etc/fstab', Buffer.from(''), { mode: 0o644, mtimeNs: 0n })]),
    );
    expect(out.map((e) => e.path.toString())).toEqual([
      '/',
      '/bin',
      '/etc',
      '/etc/a',
      '/etc/fstab',
      '/etc/g',
      '/usr',
    ]);
  });

  it('replaces an entry of the same path', async () => {
    const source = [dir('/'), { ...dir('/a'), type: 'file' as const, size: 3 }];
    const out = await collect(
      injectEntries(from(source), [fileEntry('/a', Buffer.from('new!'), { mode: 0o600, mtimeNs: 0n })]),
    );
    expect(out).toHaveLength(2);
    expect(out[1]!.size).toBe(4);
    expect(out[1]!.mode).toBe(0o600);
  });
});
