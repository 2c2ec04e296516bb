import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { walkAsNobody } from '../../../test/helpers.js';
import { startWalk, type WalkRecord } from './walk.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cloudlets-walk-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function all(walk: ReturnType<typeof startWalk>): Promise<WalkRecord[]> {
  const out: WalkRecord[] = [];
  for (let r = await walk.next(); r !== undefined; r = await walk.next()) out.push(...r);
  return out;
}

describe('startWalk (the directory walk thread)', () => {
  it('gives every path in byte order through chunks far smaller than the tree, the worker held back', async () => {
    const expected = ['/'];
    for (let d = 0; d < 12; d++) {
      const dir = `/d${String(d).padStart(2, '0')}${'x'.repeat(60)}`;
      mkdirSync(join(root, dir));
      expected.push(dir);
      for (let f = 0; f < 25; f++) {
        const file = `${dir}/f${String(f).padStart(2, '0')}${'y'.repeat(80)}`;
        writeFileSync(join(root, file), String(f));
        expected.push(file);
      }
    }
    // 1 KiB chunks hold a few records each, 64-byte ones not even one; two outstanding at most: the worker
    // waits for the consumer over and over, and must still give everything once, in order.
    for (const chunkBytes of [1024, 64]) {
      const walk = startWalk(root, [], { chunkBytes, maxChunks: 2 });
      const records = await all(walk);
      walk.stop();
      expect(
        records.map((r) => r.path.toString()),
        `chunks of ${chunkBytes}`,
      ).toEqual(expected);
      const file = records.find((r) => r.path.toString().endsWith(`f07${'y'.repeat(80)}`))!;
      expect(file.size).toBe(1);
      expect(file.mode & 0o170000).toBe(0o100000);
    }
  });

  it('stops when the consumer stops early, with nothing left waiting', async () => {
    for (let f = 0; f < 200; f++) writeFileSync(join(root, `f${f}`), '');
    const walk = startWalk(root, [], { chunkBytes: 512, maxChunks: 1 });
    const first = await walk.next();
    expect(first?.[0]?.path.toString()).toBe('/');
    walk.stop();
    // The test ends: a worker still waiting would keep vitest's worker from finishing.
  });

  it('leaves out pruned names of the root only', async () => {
    mkdirSync(join(root, '.git/objects'), { recursive: true });
    mkdirSync(join(root, 'sub/.git'), { recursive: true });
    const walk = startWalk(root, ['.git']);
    const paths = (await all(walk)).map((r) => r.path.toString());
    walk.stop();
    expect(paths).toEqual(['/', '/sub', '/sub/.git']);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'a directory that cannot be listed fails the walk at that path (seen as the user `nobody`)',
    () => {
      chmodSync(root, 0o755);
      mkdirSync(join(root, 'a'));
      mkdirSync(join(root, 'locked'), { mode: 0o700 });
      writeFileSync(join(root, 'locked/x'), 'x');
      mkdirSync(join(root, 'z'));
      // Everything before the locked directory's contents comes out first, then the error, at that path.
      expect(walkAsNobody('walk.js', 'startWalk', root)).toEqual({
        seen: ['/', '/a', '/locked'],
        code: 'ESOURCE',
        where: '/locked',
        message: 'cannot list directory: EACCES',
      });
    },
  );
});
