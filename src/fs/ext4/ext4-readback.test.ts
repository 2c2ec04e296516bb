// Real readers of what writeExt4 writes: a directory on disk through the directory source, read back
// with `debugfs rdump`; and (root only) the kernel itself, through a loop mount.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openRawTarget } from '../../disk/raw-target.js';
import { openDirectorySource, splitDev } from '../../stream/sources/dir.js';
import { writeExt4 } from './index.js';
import { fsckProblems, stream } from './test-helpers.js';

const MiB = 1024 * 1024;
const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), 'cloudlets-ext4-rb-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const opts = (sizeBytes: number) => ({
  sizeBytes,
  uuid: Buffer.alloc(16, 0x42),
  hashSeed: Buffer.alloc(16, 0x24),
  timestampSec: 1_700_000_000,
});

/** Type, mode, content or link target of every path below `root` (names as hex: they may not be UTF-8). */
function describeTree(root: Buffer, rel: Buffer = Buffer.alloc(0)): string[] {
  const out: string[] = [];
  const at = (p: Buffer): Buffer => Buffer.concat([root, Buffer.from('/'), p]);
  const names = readdirSync(at(rel), { encoding: 'buffer' }).sort(Buffer.compare);
  for (const name of names) {
    const p = rel.length ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
    const st = lstatSync(at(p));
    const kind = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFIFO() ? 'p' : 'f';
    const what = st.isSymbolicLink()
      ? readlinkSync(at(p), { encoding: 'buffer' }).toString('hex')
      : st.isFile()
        ? readFileSync(at(p)).toString('hex')
        : '';
    out.push(`${p.toString('hex')} ${kind} ${(st.mode & 0o7777).toString(8)} ${what}`);
    if (st.isDirectory()) out.push(...describeTree(root, p));
  }
  return out;
}

describe('ext4 read back', () => {
  it('holds what a directory holds, read back by debugfs rdump', async () => {
    const src = join(work, 'src');
    mkdirSync(join(src, 'etc/deep/er'), { recursive: true });
    writeFileSync(join(src, 'etc/hostname'), 'host1\n');
    writeFileSync(join(src, 'etc/deep/er/zeros'), Buffer.alloc(3 * 4096 + 5));
    writeFileSync(join(src, 'etc/deep/data'), Buffer.alloc(50_000, 'x'));
    writeFileSync(join(src, 'empty'), '');
    linkSync(join(src, 'etc/hostname'), join(src, 'hostname-link'));
    symlinkSync('etc/hostname', join(src, 'short-link'));
    symlinkSync('x'.repeat(300), join(src, 'long-link'));
    writeFileSync(Buffer.from(`${src}/odd\nname-\xff`, 'latin1'), 'odd');
    writeFileSync(join(src, 'n'.repeat(255)), 'long name');
    const img = join(work, 'dir.img');
    const target = await openRawTarget(img, 32 * MiB);
    try {
      await writeExt4(openDirectorySource(src, { xattrs: false }).entries(), target, 0, opts(32 * MiB));
    } finally {
      await target.finish();
    }
    expect(fsckProblems(img)).toEqual([]);
    const out = join(work, 'out');
    mkdirSync(out);
    execFileSync('debugfs', ['-R', `rdump / ${out}`, img], { stdio: 'ignore' });
    const lostFound = Buffer.from('lost+found').toString('hex');
    const back = describeTree(Buffer.from(out)).filter((l) => !l.startsWith(lostFound));
    expect(back).toEqual(describeTree(Buffer.from(src)));
    expect(back.length).toBe(12);
  });

  it('gives the same bytes reading content synchronously (openContentSync) as streaming it', async () => {
    const src = join(work, 'sync-src');
    mkdirSync(join(src, 'd'), { recursive: true });
    // 20 MiB of incompressible data runs into the journal laid out in the middle of a 32 MiB filesystem.
    const random = Buffer.alloc(20 * MiB);
    for (let i = 0; i < random.length; i += 4) random.writeUInt32LE((i * 2654435761) >>> 0, i);
    writeFileSync(join(src, 'd/big'), random);
    const holes = Buffer.alloc(9 * 4096 + 100);
    holes.fill(1, 0, 4096);
    holes.fill(2, 3 * 4096, 5 * 4096 - 1);
    holes.fill(3, 9 * 4096);
    writeFileSync(join(src, 'd/holes'), holes);
    writeFileSync(join(src, 'd/zero-tail'), Buffer.concat([Buffer.alloc(4096, 7), Buffer.alloc(10)]));
    writeFileSync(join(src, 'd/tiny'), 'x');
    writeFileSync(join(src, 'e'), Buffer.alloc(8192, 9));
    const build = async (name: string, sync: boolean): Promise<Buffer> => {
      const img = join(work, name);
      const target = await openRawTarget(img, 32 * MiB);
      const entries = openDirectorySource(src, { xattrs: false }).entries();
      async function* streamed() {
        for await (const e of entries) yield { ...e, openContentSync: undefined };
      }
      try {
        await writeExt4(sync ? entries : streamed(), target, 0, opts(32 * MiB));
      } finally {
        await target.finish();
      }
      expect(fsckProblems(img)).toEqual([]);
      return readFileSync(img);
    };
    const a = await build('sync.img', true);
    const b = await build('streamed.img', false);
    expect(a.equals(b)).toBe(true);
  });

  it('writes at a partition offset and nowhere else', async () => {
    const specs = [{ path: '/' }, { path: '/a', data: 'content' }];
    const a = join(work, 'plain.img');
    const b = join(work, 'offset.img');
    const ta = await openRawTarget(a, 16 * MiB);
    await writeExt4(stream(specs), ta, 0, opts(16 * MiB));
    await ta.finish();
    const tb = await openRawTarget(b, 18 * MiB);
    await writeExt4(stream(specs), tb, MiB, opts(16 * MiB));
    await tb.finish();
    const bytes = readFileSync(b);
    expect(bytes.subarray(0, MiB).equals(Buffer.alloc(MiB))).toBe(true);
    expect(bytes.subarray(17 * MiB).equals(Buffer.alloc(MiB))).toBe(true);
    expect(bytes.subarray(MiB, 17 * MiB).equals(readFileSync(a))).toBe(true);
  });

  it.skipIf(!isRoot)(
    'is mounted by the kernel, read and written, and stays clean (root only: loop mount)',
    async (ctx) => {
      const img = join(work, 'kernel.img');
      const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
      const target = await openRawTarget(img, 64 * MiB);
      await writeExt4(
        stream([
          { path: '/' },
          { path: '/bin' },
          {
            path: '/bin/ping',
            data: 'elf',
            mode: 0o755,
            xattrs: { 'security.capability': cap, 'user.x': 'y' },
          },
          { path: '/home', uid: 4294967294, gid: 70000, mode: 0o2750, mtimeNs: 1_234_567_890_123_456_789n },
          { path: '/home/l', type: 'symlink', target: 'z'.repeat(4000) },
          { path: '/dev' },
          { path: '/dev/sda', type: 'block', major: 8, minor: 0 },
          { path: '/dev/big', type: 'char', major: 300, minor: 70000 },
          { path: '/many' },
          ...Array.from({ length: 3000 }, (_, i) => ({ path: `/many/entry-${i}`, data: `${i}` })),
          // Bytes >= 0x80 hash differently as signed chars: the superblock says signed.
          ...Array.from({ length: 100 }, (_, i) => ({ path: `/many/\u00fcber-${i}`, data: `\u00fc${i}` })),
        ]),
        target,
        0,
        opts(64 * MiB),
      );
      await target.finish();
      const mnt = join(work, 'mnt');
      mkdirSync(mnt);
      const mounted = spawnSync('mount', ['-o', 'ro,loop', img, mnt], { encoding: 'utf8' });
      if (mounted.status !== 0) {
        console.log(`skipped: loop mount unavailable here: ${mounted.stderr.trim()}`);
        ctx.skip();
        return;
      }
      try {
        const home = lstatSync(join(mnt, 'home'), { bigint: true });
        expect([home.uid, home.gid, home.mode & 0o7777n, home.mtimeNs]).toEqual([
          4294967294n,
          70000n,
          0o2750n,
          1_234_567_890_123_456_789n,
        ]);
        expect(readlinkSync(join(mnt, 'home/l'))).toBe('z'.repeat(4000));
        const dev = lstatSync(join(mnt, 'dev/big'), { bigint: true });
        expect(dev.isCharacterDevice()).toBe(true);
        expect(splitDev(dev.rdev)).toEqual({ major: 300, minor: 70000 });
        expect(splitDev(lstatSync(join(mnt, 'dev/sda'), { bigint: true }).rdev)).toEqual({
          major: 8,
          minor: 0,
        });
        // The kernel finds names through the hash index: every lookup must land.
        for (let i = 0; i < 3000; i += 7)
          expect(readFileSync(join(mnt, `many/entry-${i}`), 'utf8')).toBe(`${i}`);
        for (let i = 0; i < 100; i++)
          expect(readFileSync(join(mnt, `many/\u00fcber-${i}`), 'utf8')).toBe(`\u00fc${i}`);
        expect(readdirSync(join(mnt, 'many')).length).toBe(3100);
        const xattr = execFileSync(
          'getfattr',
          ['--absolute-names', '-e', 'hex', '-n', 'security.capability', join(mnt, 'bin/ping')],
          { encoding: 'utf8' },
        );
        expect(xattr).toContain(`security.capability=0x${cap.toString('hex')}`);
      } finally {
        execFileSync('umount', [mnt]);
      }
      execFileSync('mount', ['-o', 'loop', img, mnt]);
      try {
        for (let i = 0; i < 300; i++) writeFileSync(join(mnt, `bin/new${i}`), `${i}`);
        for (let i = 0; i < 500; i++) writeFileSync(join(mnt, `many/added-${i}`), '');
        for (let i = 0; i < 3000; i += 3) rmSync(join(mnt, `many/entry-${i}`));
        rmSync(join(mnt, 'bin/ping'));
      } finally {
        execFileSync('umount', [mnt]);
      }
      expect(fsckProblems(img)).toEqual([]);
    },
  );
});
