import { spawnSync } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { walkAsNobody } from '../../../test/helpers.js';
import {
  FoundPaths,
  ListingParser,
  MAX_LISTING_BYTES,
  parseFindListing,
  startFindWalk,
} from './find-walk.js';
import { startWalk, type Walk, type WalkRecord } from './walk.js';

let root: string;
beforeEach(() => {
  // Glob characters in the root's own name: find's -path patterns must take it literally.
  root = mkdtempSync(join(tmpdir(), 'cloudlets-find [*?]\\-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

async function all(walk: Walk): Promise<WalkRecord[]> {
  const out: WalkRecord[] = [];
  try {
    for (let r = await walk.next(); r !== undefined; r = await walk.next()) out.push(...r);
  } finally {
    walk.stop();
  }
  return out;
}

/** Every field a consumer reads, including the ones read on demand. */
const fields = (r: WalkRecord) => ({
  path: r.path.toString('latin1'),
  mode: r.mode,
  uid: r.uid,
  gid: r.gid,
  nlink: r.nlink,
  size: r.size,
  mtimeNs: r.mtimeNs,
  mtimeSec: r.mtimeSec,
  mtimeNsec: r.mtimeNsec,
  ctimeSec: r.ctimeSec,
  ctimeNsec: r.ctimeNsec,
  inoLow32: r.inoLow32,
  dev: r.dev(),
  ino: r.ino(),
  inodeKey: r.inodeKey(),
  link: r.link?.toString('latin1'),
  rdev: (r.mode & 0o170000) === 0o020000 ? r.rdev() : undefined,
});

const touch = (path: string, when: string) => {
  const r = spawnSync('touch', ['-h', '-d', when, path]);
  expect(r.status, r.stderr?.toString()).toBe(0);
};

describe('startFindWalk (the walk by GNU find)', () => {
  it('gives the same records in the same order as the walk thread, for awkward names, types and times', async () => {
    mkdirSync(join(root, 'dir with space/sub'), { recursive: true });
    writeFileSync(join(root, 'dir with space/sub/f'), 'content');
    writeFileSync(join(root, 'new\nline'), 'x');
    writeFileSync(join(root, 'glob*?[x]\\'), '');
    writeFileSync(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0x6e, 0xff, 0xfe])]), 'not utf-8');
    writeFileSync(join(root, 'a'), 'a');
    writeFileSync(join(root, 'a-b'), 'ab');
    mkdirSync(join(root, 'a.d'));
    linkSync(join(root, 'a'), join(root, 'a.d/hardlink'));
    symlinkSync('target with space\nand newline', join(root, 'link'));
    spawnSync('mkfifo', [join(root, 'fifo')]);
    writeFileSync(join(root, 'setuid'), '');
    chmodSync(join(root, 'setuid'), 0o4755);
    touch(join(root, 'a'), '@1700000000.123456789');
    touch(join(root, 'new\nline'), '1969-12-31 23:59:58.5 UTC'); // tv_sec -2, tv_nsec 0.5 s
    touch(join(root, 'link'), '@0');
    if (process.getuid?.() === 0) spawnSync('mknod', [join(root, 'null'), 'c', '1', '3']);
    mkdirSync(join(root, '.git/objects'), { recursive: true });
    writeFileSync(join(root, '.hg'), 'a file, pruned all the same');
    mkdirSync(join(root, 'sub/.git'), { recursive: true });

    for (const pruned of [[], ['.git', '.hg']]) {
      const byFind = (await all(startFindWalk(root, pruned))).map(fields);
      const byThread = (await all(startWalk(root, pruned))).map(fields);
      expect(byFind).toEqual(byThread);
      expect(byFind.length).toBeGreaterThan(pruned.length === 0 ? 18 : 15);
    }
    const records = (await all(startFindWalk(root, ['.git', '.hg']))).map(fields);
    expect(records.map((r) => r.path)).not.toContain('/.git');
    expect(records.map((r) => r.path)).toContain('/sub/.git');
    expect(records.find((r) => r.path === '/a')).toMatchObject({ mtimeNs: 1_700_000_000_123_456_789n });
    expect(records.find((r) => r.path === '/new\nline')).toMatchObject({ mtimeNs: -1_500_000_000n });
    // Hard links share their key, and no other path has it.
    const keyOf = (path: string) => records.find((r) => r.path === path)?.inodeKey;
    expect(keyOf('/a.d/hardlink')).toBe(keyOf('/a'));
    expect(records.filter((r) => r.inodeKey === keyOf('/a')).map((r) => r.path)).toEqual([
      '/a',
      '/a.d/hardlink',
    ]);
    // The host path of a record's path: the root's own, and the root's followed by the path. find's walk
    // takes it from the listing as it is, the thread's makes it.
    for (const walk of [startFindWalk(root, ['.git', '.hg']), startWalk(root, ['.git', '.hg'])]) {
      for (const r of await all(walk)) {
        const expected = r.path.length === 1 ? Buffer.from(root) : Buffer.concat([Buffer.from(root), r.path]);
        expect(walk.hostPath(r.path).toString('latin1')).toBe(expected.toString('latin1'));
      }
    }
  });

  it('walks with the thread when find cannot be run', async () => {
    writeFileSync(join(root, 'f'), 'x');
    const path = process.env.PATH;
    process.env.PATH = join(root, 'no-such-dir');
    try {
      const paths = (await all(startFindWalk(root, []))).map((r) => r.path.toString());
      expect(paths).toEqual(['/', '/f']);
    } finally {
      process.env.PATH = path;
    }
  });

  it('keys a file by device and inode exactly, whatever their size', () => {
    const keyOf = (ino: string, dev: string) =>
      parseFindListing(
        Buffer.from(`f 644 0 0 2 3 17.5000000000 17.5000000000 ${ino} ${dev} /r/x\0\0`),
        '/r',
      )[0]?.inodeKey();
    expect(keyOf('12', '254')).toBe(12 * 2 ** 20 + 254);
    expect(keyOf('12', '255')).not.toBe(keyOf('12', '254'));
    expect(keyOf('13', '254')).not.toBe(keyOf('12', '254'));
    // Numbers too large to pack exactly: the text, which no packed number equals.
    expect(keyOf('12345678901234567890', '254')).toBe('254:12345678901234567890');
    expect(keyOf('8589934592', '254')).toBe('254:8589934592');
    expect(keyOf('12', '1048576')).toBe('1048576:12');
  });

  it('keeps every path of a long listing apart (its numbers are stored by blocks)', () => {
    const count = 2500;
    const lines = Array.from(
      { length: count },
      (_, i) =>
        `${i % 3 === 0 ? 'l' : 'f'} ${(i % 512).toString(8)} ${i} ${i + 1} 1 ${i * 4096 + 1} ${1_700_000_000 + i}.${String(i).padStart(9, '0')}0 17.5000000000 ${i + 7} 254 /r/p${i}\0${i % 3 === 0 ? `t${i}` : ''}\0`,
    );
    const records = parseFindListing(Buffer.from(lines.join('')), '/r');
    expect(records.length).toBe(count);
    for (const [i, r] of records.entries()) {
      expect({
        path: r.path.toString(),
        mode: r.mode & 0o7777,
        uid: r.uid,
        gid: r.gid,
        size: r.size,
        mtimeSec: r.mtimeSec,
        mtimeNsec: r.mtimeNsec,
        ino: r.ino(),
        link: r.link?.toString(),
      }).toEqual({
        path: `/p${i}`,
        mode: i % 512,
        uid: i,
        gid: i + 1,
        size: i * 4096 + 1,
        mtimeSec: 1_700_000_000 + i,
        mtimeNsec: i,
        ino: BigInt(i + 7),
        link: i % 3 === 0 ? `t${i}` : undefined,
      });
    }
  });

  it('parses a listing cut anywhere between reads, each path still a view of its host path', () => {
    const root = '/srv/img';
    const listing = Buffer.from(
      [
        `d 755 0 0 3 4096 17.5000000000 17.5000000000 2 254 ${root}\0\0`,
        `l 777 0 0 1 6 18.2500000000 18.2500000000 3 254 ${root}/link\0target\0`,
        `f 644 1000 100 2 12 19.0000000010 19.0000000010 4 254 ${root}/${'long-name/'.repeat(8)}file\0\0`,
        `f 600 0 0 1 0 20.5000000000 20.5000000000 5 254 ${root}/z\0\0`,
      ].join(''),
    );
    const fields = (found: FoundPaths) =>
      Array.from({ length: found.count }, (_, i) => {
        const r = found.record(i);
        return [
          r.path.toString(),
          found.hostPath(r.path).toString(),
          r.mode,
          r.size,
          r.mtimeNsec,
          r.ino(),
          r.link?.toString(),
        ];
      });
    const whole = new FoundPaths(root);
    new ListingParser(whole).push(listing);
    expect(fields(whole).map((f) => f[1])).toEqual([
      root,
      `${root}/link`,
      `${root}/${'long-name/'.repeat(8)}file`,
      `${root}/z`,
    ]);
    for (let a = 1; a < listing.length; a++) {
      for (const b of [a + 1, a + 7, a + 90]) {
        const found = new FoundPaths(root);
        const parser = new ListingParser(found);
        for (const [from, to] of [
          [0, a],
          [a, b],
          [b, listing.length],
        ] as const) {
          if (from < to) parser.push(listing.subarray(from, Math.min(to, listing.length)));
        }
        expect(parser.complete).toBe(true);
        expect({ a, b, records: fields(found) }).toEqual({ a, b, records: fields(whole) });
      }
    }
  });

  it('refuses a listing it does not know rather than guess', () => {
    expect(() => parseFindListing(Buffer.from('f 644 0 0 1 3 17.5 17.5 1 1 /r/x\0\0'), '/r')).toThrow(
      /unexpected find output/,
    );
    expect(MAX_LISTING_BYTES).toBeGreaterThan(1 << 20);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'a directory find cannot read goes to the thread, which fails at that path (seen as `nobody`)',
    () => {
      chmodSync(root, 0o755);
      mkdirSync(join(root, 'a'));
      mkdirSync(join(root, 'locked'), { mode: 0o700 });
      writeFileSync(join(root, 'locked/x'), 'x');
      expect(walkAsNobody('find-walk.js', 'startFindWalk', root)).toEqual({
        seen: ['/', '/a', '/locked'],
        code: 'ESOURCE',
        where: '/locked',
        message: 'cannot list directory: EACCES',
      });
    },
  );
});
