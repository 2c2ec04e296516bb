import { describe, expect, it } from 'vitest';
import { OpenDirs } from './open-dirs.js';

/** Feeds paths in byte order (directories are the paths in `dirs`); returns each path's parent and the close order. */
function walk(paths: string[], dirs: Set<string>) {
  const closed: string[] = [];
  const open = new OpenDirs<{ path: Buffer }>((d) => closed.push(d.path.toString()));
  const parents: Record<string, string | undefined> = {};
  const sorted = paths.map((p) => Buffer.from(p)).sort(Buffer.compare);
  for (const path of sorted) {
    if (path.length === 1) open.open({ path });
    else {
      parents[path.toString()] = open.parentOf(path, path.lastIndexOf(0x2f))?.path.toString();
      if (dirs.has(path.toString())) open.open({ path });
    }
  }
  const root = open.closeAllButRoot()?.path.toString();
  return { order: sorted.map(String), parents, closed, root };
}

describe('OpenDirs', () => {
  it('takes a directory up again when its content comes after siblings that extend its name', () => {
    const dirs = new Set(['/a', '/a/b', '/a-b', '/a.d', '/a/b-c']);
    const paths = [
      '/',
      ...dirs,
      '/a/x',
      '/a/b/y',
      '/a/b-c/z',
      '/a/b.txt',
      '/a-b/f',
      '/a.d/g',
      '/a b',
      '/a0',
      '/b',
    ];
    const { order, parents, closed, root } = walk(paths, dirs);
    // Byte order puts '/a-b' and '/a.d/g' between '/a' and '/a/x'.
    expect(order.indexOf('/a-b')).toBeLessThan(order.indexOf('/a/x'));
    for (const p of paths.slice(1)) expect(parents[p], p).toBe(p.slice(0, p.lastIndexOf('/')) || '/');
    // Each directory closes once, after all of its content, deepest first.
    expect([...closed].sort()).toEqual([...dirs].sort());
    expect(closed.indexOf('/a/b')).toBeLessThan(closed.indexOf('/a'));
    expect(closed.indexOf('/a')).toBeLessThan(closed.length);
    expect(root).toBe('/');
  });

  it('closes a directory set aside as soon as a path sorts past its content', () => {
    const closed: string[] = [];
    const open = new OpenDirs<{ path: Buffer }>((d) => closed.push(d.path.toString()));
    open.open({ path: Buffer.from('/') });
    const at = (p: string) => open.parentOf(Buffer.from(p), p.lastIndexOf('/'))?.path.toString();
    expect(at('/a')).toBe('/');
    open.open({ path: Buffer.from('/a') });
    expect(at('/a-b')).toBe('/'); // '/a' is set aside: '/a/...' may still come
    expect(closed).toEqual([]);
    expect(at('/a0')).toBe('/'); // nothing under '/a/' sorts after '/a0'
    expect(closed).toEqual(['/a']);
  });

  it('answers undefined for a parent that never came or is closed', () => {
    const open = new OpenDirs<{ path: Buffer }>(() => {});
    expect(open.parentOf(Buffer.from('/x'), 0)).toBeUndefined(); // no root yet
    open.open({ path: Buffer.from('/') });
    expect(open.parentOf(Buffer.from('/missing/x'), 8)).toBeUndefined();
    open.open({ path: Buffer.from('/d') });
    expect(open.parentOf(Buffer.from('/e'), 0)?.path.toString()).toBe('/');
    expect(open.parentOf(Buffer.from('/e/x'), 2)).toBeUndefined(); // '/e' was a file
  });
});
