import {
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CAPABILITY,
  file,
  fromArray,
  isRoot,
  LONG_NAME,
  run,
  sampleEntries,
  T0,
  tarBytes,
} from '../../../test/tar-fixtures.js';
import type { Entry } from '../entry.js';
import { writeTar } from './tar.js';

const notRoot = 'extracting owners, devices and security.* xattrs needs root';
if (!isRoot) console.log(`skipping GNU tar / bsdtar extraction tests: ${notRoot}`);

let dir: string;
let archive: string;
const entries = sampleEntries();
const kept = entries.filter((e) => e.type !== 'socket');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cloudlets-tar-'));
  archive = join(dir, 'sample.tar');
  writeFileSync(archive, await tarBytes(sampleEntries()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const hostPath = (root: string, e: Entry) => Buffer.concat([Buffer.from(root), e.path]);
const major = (rdev: number) => Math.floor(rdev / 256) & 0xfff;
const minor = (rdev: number) => (rdev & 0xff) | ((Math.floor(rdev / 2 ** 20) & 0xfff) << 8);

/** Compares an extracted tree with the entries: type, owner, mode, mtime, links, devices, xattrs. */
function expectExtracted(root: string, opts: { rootTimes: boolean }) {
  for (const e of kept) {
    const p = hostPath(root, e);
    const st = lstatSync(p, { bigint: true });
    const where = e.path.toString('utf8');
    if (e.type === 'hardlink') {
      expect(st.ino, where).toBe(lstatSync(hostPath(root, { ...e, path: e.linkTarget! })).ino && st.ino);
      expect(Number(st.nlink), where).toBe(2);
      continue;
    }
    const type = st.isDirectory()
      ? 'dir'
      : st.isSymbolicLink()
        ? 'symlink'
        : st.isCharacterDevice()
          ? 'char'
          : st.isBlockDevice()
            ? 'block'
            : st.isFIFO()
              ? 'fifo'
              : 'file';
    expect(type, where).toBe(e.type);
    expect([Number(st.uid), Number(st.gid)], where).toEqual([e.uid, e.gid]);
    if (e.type !== 'symlink') expect(Number(st.mode & 0o7777n), where).toBe(e.mode);
    if (e.path.length > 1 || opts.rootTimes) expect(st.mtimeNs, where).toBe(e.mtimeNs);
    if (e.type === 'symlink') expect(readlinkSync(p, { encoding: 'buffer' }), where).toEqual(e.linkTarget);
    if (e.type === 'char' || e.type === 'block') {
      expect([major(Number(st.rdev)), minor(Number(st.rdev))], where).toEqual([e.devMajor, e.devMinor]);
    }
    if (e.type === 'file' && e.size < 100) expect(readFileSync(p).length, where).toBe(e.size);
  }
  const hex = run('getfattr', ['-d', '-m', '-', '-e', 'hex', join(root, 'a/cap')]).stdout.toString();
  expect(hex).toContain(`security.capability=0x${CAPABILITY.toString('hex')}`);
  expect(hex).toContain('user.bin=0x0001020a3d');
  expect(readFileSync(join(root, 'b/big')).equals(Buffer.alloc(3 << 20, 0x61))).toBe(true);
}

describe('GNU tar reads our archives', () => {
  it('lists every member with its metadata', () => {
    const r = run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-tvf', archive]);
    expect(r.code, r.stderr).toBe(0);
    // GNU tar 1.34 warns about (and ignores) hdrcharset, keeping the raw bytes as we want.
    expect(r.stderr.replace(/^.*hdrcharset.*\n/gm, '')).toBe('');
    const out = r.stdout.toString('latin1');
    expect(out).toMatch(/^-rwsr-xr-x\* 4294967294\/3000000 +3 2020-09-13 \d\d:26 \.\/a\/cap$/m);
    expect(out).toMatch(/^-rwxr-sr-x +1000\/1000 .* \.\/a\/sgid$/m);
    expect(out).toMatch(/^drwxrwxrwt +0\/0 .* \.\/a\/$/m);
    expect(out).toMatch(/^crw-rw-rw- +0\/0 +1,3 .* \.\/dev\/null$/m);
    expect(out).toMatch(/^brw-rw---- +0\/6 +8,0 .* \.\/dev\/sda$/m);
    expect(out).toMatch(/^prw------- .* \.\/dev\/fifo$/m);
    expect(out).toMatch(/^hrwsr-xr-x .* \.\/b\/hl link to \.\/a\/cap$/m);
    expect(out).toMatch(/^lrwxrwxrwx .* \.\/b\/sl -> \.\.\/a\/caf\\303\\251$/m);
    expect(out).toContain(`.${LONG_NAME}`);
    expect(out).toContain('./a/bad\\377\\376name');
    expect(out).toContain('./a/nl\\nname');
    expect(out).not.toContain('run.sock');
  });

  it.skipIf(!isRoot)('extracts the same metadata (-xpf as root)', () => {
    const dest = join(dir, 'gnu');
    mkdirSync(dest);
    const r = run('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', archive, '-C', dest]);
    expect(r.code, r.stderr).toBe(0);
    // GNU tar 1.34 warns about (and ignores) hdrcharset, keeping the raw bytes as we want.
    expect(r.stderr.replace(/^.*hdrcharset.*\n/gm, '')).toBe('');
    expectExtracted(dest, { rootTimes: true });
  });
});

describe('bsdtar reads our archives', () => {
  it('lists every member', () => {
    const r = run('bsdtar', ['-tvf', archive]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = r.stdout.toString('latin1');
    expect(out).toMatch(/^-rwsr-xr-x +0 4294967294 +3000000 +3 .* \.\/a\/cap$/m);
    expect(out).toMatch(/^-rwxr-sr-x +0 alice +staff .* \.\/a\/sgid$/m);
    expect(out).toContain(`.${LONG_NAME}`);
  });

  it.skipIf(!isRoot)('extracts the same metadata (-xpf --xattrs as root)', () => {
    const dest = join(dir, 'bsd');
    mkdirSync(dest);
    const r = run('bsdtar', ['--xattrs', '--numeric-owner', '-xpf', archive, '-C', dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    // bsdtar does not restore the extraction directory's own times from `./`.
    expectExtracted(dest, { rootTimes: false });
  });
});

describe('writeTar', () => {
  it('counts members and skipped sockets, and ends on a record boundary', async () => {
    const chunks: Buffer[] = [];
    const out = new Writable({
      write(c, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    const r = await writeTar(fromArray(sampleEntries()), out);
    expect(r).toEqual({ entries: kept.length, bytes: Buffer.concat(chunks).length, skipped: 1 });
    expect(r.bytes % 10240).toBe(0);
  });

  it('writes the same archive to a file descriptor, synchronously or from a position by the thread pool', async () => {
    // Enough content for several batches in flight at once.
    const big = Buffer.alloc(3 * 1024 * 1024 + 123, 7);
    const entries = () => fromArray([...sampleEntries(), file('/zz/big', big), file('/zz/small', 'x')]);
    const chunks: Buffer[] = [];
    const out = new Writable({
      write(c, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    await writeTar(entries(), out);
    const expected = Buffer.concat(chunks);
    for (const position of [undefined, 0]) {
      const path = join(dir, `fd-${position}.tar`);
      const fd = openSync(path, 'w');
      try {
        const r = await writeTar(entries(), { fd, position });
        expect(r.bytes).toBe(expected.length);
      } finally {
        closeSync(fd);
      }
      expect(readFileSync(path).equals(expected)).toBe(true);
    }
  });

  it('reports a failed positional write and leaves no write under way', async () => {
    const fd = openSync(join(dir, 'read-only.tar'), 'w');
    closeSync(fd);
    const ro = openSync(join(dir, 'read-only.tar'), 'r');
    try {
      await expect(writeTar(fromArray(sampleEntries()), { fd: ro, position: 0 })).rejects.toMatchObject({
        code: 'EOUTPUT',
      });
    } finally {
      closeSync(ro);
    }
  });

  it('waits for a slow output (backpressure) and batches small files', async () => {
    let inFlight = 0;
    let writes = 0;
    const chunks: Buffer[] = [];
    const out = new Writable({
      highWaterMark: 64 << 10,
      write(c, _e, cb) {
        writes++;
        inFlight += c.length;
        chunks.push(c);
        setTimeout(() => {
          inFlight -= c.length;
          cb();
        }, 1);
      },
    });
    let maxBuffered = 0;
    const many = Array.from({ length: 2000 }, (_, i) =>
      file(`/f/${String(i).padStart(5, '0')}`, `file ${i}\n`),
    );
    const r = await writeTar(fromArray(many), out, {
      onProgress: () => {
        maxBuffered = Math.max(maxBuffered, out.writableLength);
      },
    });
    expect(r.entries).toBe(2000);
    expect(writes).toBeLessThan(10); // 2000 headers + files in ~1 MiB batches
    expect(maxBuffered).toBeLessThanOrEqual(2 << 20);
    expect(inFlight).toBeGreaterThanOrEqual(0);
    const bytes = Buffer.concat(chunks);
    expect(bytes.length).toBe(r.bytes);
    expect(bytes.indexOf('file 1999\n')).toBeGreaterThan(0);
  });

  it('fails clearly when a file yields other than its listed size', async () => {
    const short = file('/etc/short', 'abc', { size: 10 });
    await expect(tarBytes([short])).rejects.toMatchObject({ code: 'ESOURCE', where: '/etc/short' });
    const long = file('/etc/long', 'abcdef', { size: 2 });
    await expect(tarBytes([long])).rejects.toThrow(/changed while it was read/);
  });

  it('clamps times to SOURCE_DATE_EPOCH semantics', async () => {
    const a = await tarBytes([file('/x', 'x', { mtimeNs: T0 + 10n ** 12n })], { mtimeClampNs: T0 });
    const b = await tarBytes([file('/x', 'x', { mtimeNs: T0 + 10n ** 15n })], { mtimeClampNs: T0 });
    expect(a.equals(b)).toBe(true);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    async function* endless() {
      for (let i = 0; ; i++) {
        if (i === 100) ac.abort(new Error('stop'));
        yield file(`/f${i}`, 'x');
      }
    }
    const out = new Writable({ write: (_c, _e, cb) => cb() });
    await expect(writeTar(endless(), out, { signal: ac.signal })).rejects.toThrow('stop');
  });
});
