import { execFileSync, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CloudletsError } from '../../errors.js';
import type { Entry } from '../entry.js';
import { openDirectorySource, splitDev } from './dir.js';

const isRoot = process.getuid?.() === 0;
let root: string;
let rootBuf: Buffer;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cloudlets-dir-'));
  rootBuf = Buffer.from(root);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A host path for image path bytes. */
const at = (p: string | Buffer) => Buffer.concat([rootBuf, Buffer.isBuffer(p) ? p : Buffer.from(p)]);

async function collect(src = openDirectorySource(root)): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of src.entries()) out.push(e);
  return out;
}

async function readAll(e: Entry): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of e.content!()) chunks.push(c);
  return Buffer.concat(chunks);
}

function xattrsSupported(): boolean {
  writeFileSync(join(root, '.probe'), '');
  const ok = spawnSync('setfattr', ['-n', 'user.probe', '-v', '1', join(root, '.probe')]).status === 0;
  rmSync(join(root, '.probe'));
  return ok;
}

describe('openDirectorySource', () => {
  it('yields the root first, then every path in byte order, names exact', async () => {
    const nl = Buffer.from('a\nb');
    const ff = Buffer.from([0x65, 0xff, 0x20, 0x66]);
    const bs = Buffer.from('c\\d');
    mkdirSync(at('/a'));
    writeFileSync(at('/a-b'), 'x');
    writeFileSync(at('/a/x'), 'y');
    mkdirSync(at('/a0'));
    writeFileSync(at(Buffer.concat([Buffer.from('/'), nl])), '');
    writeFileSync(at(Buffer.concat([Buffer.from('/'), ff])), '');
    writeFileSync(at(Buffer.concat([Buffer.from('/'), bs])), '');
    mkdirSync(at('/empty'));
    const paths = (await collect()).map((e) => e.path);
    const expected = ['/', '/a', '/a-b', '/a/x', '/a0', '/empty']
      .map((p) => Buffer.from(p))
      .concat([nl, ff, bs].map((n) => Buffer.concat([Buffer.from('/'), n])))
      .sort(Buffer.compare);
    expect(paths.map((p) => p.toString('hex'))).toEqual(expected.map((p) => p.toString('hex')));
    expect(paths[0]!.toString()).toBe('/');
  });

  it('carries metadata from lstat: type, mode with special bits, owner, mtime in ns, size, content', async () => {
    writeFileSync(at('/f'), 'hello');
    chmodSync(at('/f'), 0o4755);
    mkdirSync(at('/t'));
    chmodSync(at('/t'), 0o1777);
    utimesSync(at('/f'), 1_600_000_000.123456, 1_600_000_000.123456);
    symlinkSync('../f\nx', at('/l'));
    const entries = await collect();
    const byPath = new Map(entries.map((e) => [e.path.toString(), e]));
    const f = byPath.get('/f')!;
    expect(f).toMatchObject({ type: 'file', mode: 0o4755, size: 5 });
    expect(f.mtimeNs).toBe(lstatSync(at('/f'), { bigint: true }).mtimeNs);
    expect(f.uid).toBe(process.getuid!());
    expect((await readAll(f)).toString()).toBe('hello');
    expect(byPath.get('/t')).toMatchObject({ type: 'dir', mode: 0o1777, size: 0 });
    expect(byPath.get('/l')).toMatchObject({ type: 'symlink', size: 0 });
    expect(byPath.get('/l')!.linkTarget!.toString()).toBe('../f\nx');
    expect(byPath.get('/')!.type).toBe('dir');
  });

  it('turns later links of a file into hardlink entries naming the first path, content still readable', async () => {
    writeFileSync(at('/b'), 'shared');
    linkSync(at('/b'), at('/a'));
    linkSync(at('/b'), at('/c'));
    const entries = (await collect()).filter((e) => e.path.length > 1);
    expect(entries.map((e) => [e.path.toString(), e.type, e.linkTarget?.toString()])).toEqual([
      ['/a', 'file', undefined],
      ['/b', 'hardlink', '/a'],
      ['/c', 'hardlink', '/a'],
    ]);
    expect(entries[1]!.size).toBe(0);
    expect(entries[1]!.targetSize).toBe(6);
    expect((await readAll(entries[1]!)).toString()).toBe('shared');
  });

  it('reports fifos and, as root, device numbers', async () => {
    execFileSync('mkfifo', [at('/p').toString()]);
    const p = (await collect()).find((e) => e.path.toString() === '/p')!;
    expect(p).toMatchObject({ type: 'fifo', size: 0 });
  });

  it.skipIf(!isRoot)(
    'reports character and block devices with major/minor (needs root for mknod)',
    async () => {
      execFileSync('mknod', [at('/c').toString(), 'c', '4', '64']);
      execFileSync('mknod', [at('/b').toString(), 'b', '259', '300000']);
      const es = await collect();
      expect(es.find((e) => e.path.toString() === '/c')).toMatchObject({
        type: 'char',
        devMajor: 4,
        devMinor: 64,
      });
      expect(es.find((e) => e.path.toString() === '/b')).toMatchObject({
        type: 'block',
        devMajor: 259,
        devMinor: 300000,
      });
    },
  );

  it("gives the same entries walked by GNU find (walk: 'find') as by the walk thread", async () => {
    mkdirSync(at('/d/e'), { recursive: true });
    writeFileSync(at('/d/e/f'), 'content');
    writeFileSync(at('/b'), 'shared');
    linkSync(at('/b'), at('/a'));
    symlinkSync('d/e/f', at('/link'));
    execFileSync('mkfifo', [at('/p').toString()]);
    if (isRoot) execFileSync('mknod', [at('/c').toString(), 'c', '4', '64']);
    const plain = (e: Entry) => ({ ...e, content: undefined, openContentSync: undefined });
    const byThread = await collect(openDirectorySource(root));
    const byFind = await collect(openDirectorySource(root, { walk: 'find' }));
    expect(byFind.map(plain)).toEqual(byThread.map(plain));
    expect(byFind.length).toBe(isRoot ? 9 : 8);
    const f = byFind.find((e) => e.path.toString() === '/d/e/f')!;
    expect((await readAll(f)).toString()).toBe('content');
  });

  it('splits Linux device numbers', () => {
    expect(splitDev((4n << 8n) | 64n)).toEqual({ major: 4, minor: 64 });
    // major 259 and minor 300000 use the high bits of both halves.
    const dev =
      ((259n & 0xfffn) << 8n) | (300000n & 0xffn) | ((300000n & ~0xffn) << 12n) | ((259n & ~0xfffn) << 32n);
    expect(splitDev(dev)).toEqual({ major: 259, minor: 300000 });
  });

  it('reads user xattrs, binary-safe, for names with newlines, backslashes and non-UTF-8 bytes', async (t) => {
    if (!xattrsSupported()) t.skip('this filesystem has no user xattrs');
    const weird = Buffer.concat([Buffer.from('/x\n\\'), Buffer.from([0xff])]);
    writeFileSync(at(weird), '');
    mkdirSync(at('/d'));
    // argv strings cannot carry the byte 0xff; printf in a shell can.
    execFileSync(
      'sh',
      [
        '-c',
        `setfattr -n user.bin -v 0x00ff0a5c "$(printf 'x\\n\\\\\\377')" && setfattr -n user.dir -v hi d && setfattr -n user.root -v r .`,
      ],
      { cwd: root },
    );
    const es = await collect();
    const w = es.find((e) => e.path.equals(weird))!;
    expect(w.xattrs.get('user.bin')!.toString('hex')).toBe('00ff0a5c');
    expect(
      es
        .find((e) => e.path.toString() === '/d')!
        .xattrs.get('user.dir')!
        .toString(),
    ).toBe('hi');
    expect(es[0]!.xattrs.get('user.root')!.toString()).toBe('r');
  });

  it.skipIf(!isRoot)('reads a binary security.capability (needs root)', async () => {
    writeFileSync(at('/ping'), '');
    execFileSync('setfattr', [
      '-n',
      'security.capability',
      '-v',
      '0x0100000200200000000000000000000000000000',
      at('/ping').toString(),
    ]);
    const e = (await collect()).find((x) => x.path.toString() === '/ping')!;
    expect(e.xattrs.get('security.capability')!.toString('hex')).toBe(
      '0100000200200000000000000000000000000000',
    );
  });

  it("gives the walk's stat data only when asked, batches holding the same entries", async () => {
    writeFileSync(join(root, 'f'), 'hello');
    const st = lstatSync(join(root, 'f'), { bigint: true });
    expect((await collect()).every((e) => e.hostStat === undefined)).toBe(true);
    const src = openDirectorySource(root, { hostStat: true });
    const batches: Entry[] = [];
    for await (const batch of src.entryBatches!()) batches.push(...batch);
    expect(batches.map((e) => e.path.toString())).toEqual(['/', '/f']);
    const f = batches[1]!.hostStat!;
    expect([f.size, f.mode, f.mtimeSec, f.mtimeNsec, f.ctimeSec, f.ctimeNsec, f.inoLow32]).toEqual([
      5,
      Number(st.mode),
      Number(st.mtimeNs / 1_000_000_000n),
      Number(st.mtimeNs % 1_000_000_000n),
      Number(st.ctimeNs / 1_000_000_000n),
      Number(st.ctimeNs % 1_000_000_000n),
      Number(st.ino % 2n ** 32n),
    ]);
  });

  it('skips pruned subtrees without walking them', async () => {
    mkdirSync(at('/.git/objects'), { recursive: true });
    writeFileSync(at('/.git/objects/x'), '');
    writeFileSync(at('/.gitignore'), '');
    const src = openDirectorySource(root, { prune: (p) => p.equals(Buffer.from('/.git')) });
    expect((await collect(src)).map((e) => e.path.toString())).toEqual(['/', '/.gitignore']);
  });

  it('fails naming the path when a file changes size while read', async () => {
    writeFileSync(at('/grow'), 'abc');
    const e = (await collect()).find((x) => x.path.toString() === '/grow')!;
    appendFileSync(at('/grow'), 'def');
    await expect(readAll(e)).rejects.toMatchObject({ code: 'ESOURCE', where: '/grow' });
  });

  it('the synchronous reader notices a file that grew or shrank, with or without room past its end', async () => {
    writeFileSync(at('/grow'), 'abc');
    writeFileSync(at('/shrink'), 'abcdef');
    writeFileSync(at('/same'), 'abc');
    const entries = await collect();
    const byPath = (p: string) => entries.find((x) => x.path.toString() === p)!;
    appendFileSync(at('/grow'), 'def');
    writeFileSync(at('/shrink'), 'abc');
    // Read into a buffer with room for one more byte (the end is checked by that read), and into one
    // exactly the file's size (checked by a read past the end at close).
    for (const room of [16, 3]) {
      const readWhole = (e: Entry, want: number) => {
        const reader = e.openContentSync!();
        const buf = Buffer.alloc(room);
        let done = 0;
        try {
          while (done < want) {
            const n = reader.read(buf, done, Math.min(want, room) - done, done);
            if (n === 0) break;
            done += n;
          }
        } catch (err) {
          reader.close(-1);
          throw err;
        }
        reader.close(done);
        return buf.subarray(0, done).toString();
      };
      expect(readWhole(byPath('/same'), 3), `room ${room}`).toBe('abc');
      expect(() => readWhole(byPath('/grow'), 3), `room ${room}`).toThrow(/changed size while being read/);
      expect(() => readWhole(byPath('/shrink'), 6), `room ${room}`).toThrow(/changed size while being read/);
    }
  });

  it('streams a large file in chunks', async () => {
    writeFileSync(at('/big'), Buffer.alloc(3 * 1024 * 1024 + 5, 7));
    const e = (await collect()).find((x) => x.path.toString() === '/big')!;
    let n = 0;
    let chunks = 0;
    for await (const c of e.content!()) {
      n += c.length;
      chunks++;
    }
    expect(n).toBe(3 * 1024 * 1024 + 5);
    expect(chunks).toBeGreaterThan(1);
  });
});

describe('readFile', () => {
  it('reads a file, following symlinks inside the image, absolute targets from the image root', async () => {
    mkdirSync(at('/etc/sub'), { recursive: true });
    writeFileSync(at('/etc/real'), 'content');
    symlinkSync('/etc/real', at('/etc/abs'));
    symlinkSync('../real', at('/etc/sub/rel'));
    symlinkSync('sub', at('/etc/dirlink'));
    const src = openDirectorySource(root);
    expect((await src.readFile('/etc/real'))!.toString()).toBe('content');
    expect((await src.readFile('/etc/abs'))!.toString()).toBe('content');
    expect((await src.readFile('/etc/dirlink/rel'))!.toString()).toBe('content');
    expect(await src.readFile('/etc/missing')).toBeUndefined();
    expect(await src.readFile('/etc/real/below')).toBeUndefined();
  });

  it('refuses a symlink escaping the image, a .. above the root, loops and directories', async () => {
    writeFileSync(join(root, '..', `${root.split('/').pop()}-outside`), 'secret');
    symlinkSync(`../../../../../../../../..${root}-outside`, at('/esc'));
    symlinkSync('loop', at('/loop'));
    mkdirSync(at('/d'));
    const src = openDirectorySource(root);
    try {
      await expect(src.readFile('/esc')).rejects.toMatchObject({ code: 'EPATH', where: '/esc' });
      await expect(src.readFile('/../etc/passwd')).rejects.toBeInstanceOf(CloudletsError);
      await expect(src.readFile('/loop')).rejects.toMatchObject({ code: 'EPATH' });
      await expect(src.readFile('/d')).rejects.toMatchObject({ code: 'EPATH' });
    } finally {
      rmSync(`${root}-outside`, { force: true });
    }
  });
});

describe('fileSize', () => {
  it('sizes a file without reading it, resolving symlinks as readFile does', async () => {
    mkdirSync(at('/boot'), { recursive: true });
    writeFileSync(at('/boot/vmlinuz-2'), 'kernel');
    writeFileSync(at('/boot/initrd.img-2'), 'initrd!');
    symlinkSync('boot', at('/b'));
    symlinkSync('/boot/vmlinuz-2', at('/vmlinuz'));
    const src = openDirectorySource(root);
    expect(await src.fileSize!('/vmlinuz')).toBe(6);
    expect(await src.fileSize!('/b/initrd.img-2')).toBe(7);
    expect(await src.fileSize!('/boot/missing')).toBeUndefined();
    await expect(src.fileSize!('/boot')).rejects.toMatchObject({ code: 'EPATH' });
  });
});
