import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openRawTarget } from '../../disk/raw-target.js';
import { isCloudletsError } from '../../errors.js';
import type { Entry } from '../../stream/entry.js';
import { dirBlockCount } from './dir.js';
import { createExt4Tally, type Ext4Options, estimateExt4Size, writeExt4 } from './index.js';
import { debugfs, entry, fsckProblems, type Spec, stream, T0 } from './test-helpers.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'cloudlets-ext4-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const baseOpts = (sizeBytes: number): Ext4Options => ({
  sizeBytes,
  uuid: Buffer.from('0123456789abcdef0123456789abcdef', 'hex'),
  hashSeed: Buffer.from('fedcba9876543210fedcba9876543210', 'hex'),
  label: 'cloudlet-root',
  timestampSec: 1_700_000_000,
});

let n = 0;
async function build(specs: Spec[], sizeBytes: number, opts: Partial<Ext4Options> = {}): Promise<string> {
  const img = join(dir, `fs${n++}.img`);
  const target = await openRawTarget(img, sizeBytes);
  try {
    await writeExt4(stream(specs), target, 0, { ...baseOpts(sizeBytes), ...opts });
  } finally {
    await target.finish();
  }
  return img;
}

const stat = (img: string, path: string): string => debugfs(img, `stat "${path}"`);
const cat = (img: string, path: string): Buffer => Buffer.from(debugfs(img, `cat "${path}"`), 'latin1');
const inodeOf = (s: string): number => Number(/Inode: (\d+)/.exec(s)?.[1]);

/** What debugfs prints for a time: `0x<seconds low 32>:<extra>` (extra = nanoseconds << 2 | epoch bits). */
function timeHex(ns: bigint): string {
  const sec = ns / 1_000_000_000n - (ns % 1_000_000_000n < 0n ? 1n : 0n);
  const nsec = ns - sec * 1_000_000_000n;
  const low = BigInt.asUintN(32, sec);
  const epoch = ((sec - BigInt.asIntN(32, sec)) >> 32n) & 3n;
  return `0x${low.toString(16).padStart(8, '0')}:${((nsec << 2n) | epoch).toString(16).padStart(8, '0')}`;
}

const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
const acl = Buffer.concat([
  Buffer.from([2, 0, 0, 0]),
  ...[
    [0x01, 7, 0xffffffff],
    [0x02, 4, 1000],
    [0x04, 4, 0xffffffff],
    [0x10, 4, 0xffffffff],
    [0x20, 4, 0xffffffff],
  ].map(([tag, perm, id]) => {
    const b = Buffer.alloc(8);
    b.writeUInt16LE(tag as number, 0);
    b.writeUInt16LE(perm as number, 2);
    b.writeUInt32LE(id as number, 4);
    return b;
  }),
]);
const longName = 'n'.repeat(255);
const slowTarget = `${'long/'.repeat(799)}tail`; // 3999 bytes
const deep = Array.from({ length: 100 }, (_, i) => `d${i}`);

function variedTree(): Spec[] {
  const specs: Spec[] = [
    { path: '/', mode: 0o755 },
    { path: '/bin' },
    { path: '/bin/su', data: 'setuid binary', mode: 0o4755 },
    { path: '/data', mode: 0o1777, uid: 4294967294, gid: 4294967294 },
    { path: '/data/empty', data: '' },
    {
      path: '/data/owned',
      data: 'owned',
      uid: 4294967294,
      gid: 70000,
      mode: 0o640,
      mtimeNs: 1_234_567_890_987_654_321n,
    },
    { path: '/data/future', data: 'after 2038', mtimeNs: 2n ** 33n * 1_000_000_000n + 5n },
    { path: '/data/past', data: 'before 1970', mtimeNs: -86_400_000_000_001n },
    { path: `/data/${longName}`, data: 'long name' },
    { path: '/dev' },
    { path: '/dev/null', type: 'char', major: 1, minor: 3, mode: 0o666 },
    { path: '/dev/nvme0n1', type: 'block', major: 259, minor: 300000, mode: 0o660, gid: 6 },
    { path: '/dev/fifo', type: 'fifo' },
    { path: '/dev/sock', type: 'socket', mode: 0o755 },
    { path: '/links' },
    { path: '/links/fast', type: 'symlink', target: '../bin/su' },
    { path: '/links/slow', type: 'symlink', target: slowTarget },
    { path: '/links/su-hard', type: 'hardlink', target: '/bin/su' },
    { path: '/x' },
    {
      path: '/x/caps',
      data: 'ping',
      xattrs: {
        'security.capability': cap,
        'user.note': 'small',
        'user.empty': '',
        'user.\u00e9t\u00e9': 'summer',
      },
    },
    {
      path: '/x/bigx',
      data: 'many xattrs',
      xattrs: {
        'user.a': Buffer.alloc(1500, 0xa1),
        'user.b': Buffer.alloc(1500, 0xb2),
        'trusted.t': 'in inode',
      },
    },
    { path: '/x/acl', data: 'acl', xattrs: { 'system.posix_acl_access': acl } },
    { path: '/x/dir-with-xattr', xattrs: { 'security.selinux': 'system_u:object_r:etc_t:s0\0' } },
  ];
  for (let i = 1; i <= deep.length; i++) specs.push({ path: `/deep/${deep.slice(0, i).join('/')}` });
  specs.push({ path: '/deep' }, { path: `/deep/${deep.join('/')}/leaf`, data: 'bottom' });
  return specs;
}

describe('writeExt4', () => {
  it('writes a tree that e2fsck accepts and debugfs reads back exactly', async () => {
    const img = await build(variedTree(), 64 * MiB);
    expect(fsckProblems(img)).toEqual([]);

    const su = stat(img, '/bin/su');
    expect(su).toMatch(/Type: regular\s+Mode:\s+04755/);
    expect(su).toMatch(/Links: 2/);
    expect(inodeOf(stat(img, '/links/su-hard'))).toBe(inodeOf(su));
    expect(cat(img, '/links/su-hard').toString()).toBe('setuid binary');

    expect(stat(img, '/data')).toMatch(/Mode:\s+01777/);
    // debugfs prints a uid as a signed 32-bit number: -2 is 4294967294.
    expect(stat(img, '/data')).toMatch(/User:\s+-2\s+Group:\s+-2\s/);
    const owned = stat(img, '/data/owned');
    expect(owned).toMatch(/User:\s+-2\s+Group:\s+70000\s/);
    expect(owned).toContain(`mtime: ${timeHex(1_234_567_890_987_654_321n)}`);
    expect(owned).toContain(`crtime: ${timeHex(1_234_567_890_987_654_321n)}`);
    expect(stat(img, '/data/future')).toContain(`mtime: ${timeHex(2n ** 33n * 1_000_000_000n + 5n)}`);
    expect(stat(img, '/data/past')).toContain(`mtime: ${timeHex(-86_400_000_000_001n)}`);
    expect(stat(img, '/bin/su')).toContain(`mtime: ${timeHex(T0)}`);
    expect(stat(img, '/data/empty')).toMatch(/Size: 0\n/);
    expect(cat(img, `/data/${longName}`).toString()).toBe('long name');

    expect(stat(img, '/dev/null')).toMatch(/Type: character special\s+Mode:\s+0666/);
    expect(stat(img, '/dev/null')).toMatch(/major\/minor number: 0*1:0*3 /);
    expect(stat(img, '/dev/nvme0n1')).toMatch(/Type: block special[\s\S]*major\/minor number: 259:300000 /);
    expect(stat(img, '/dev/fifo')).toMatch(/Type: FIFO/);
    expect(stat(img, '/dev/sock')).toMatch(/Type: socket\s+Mode:\s+0755/);

    expect(stat(img, '/links/fast')).toContain('Fast link dest: "../bin/su"');
    expect(stat(img, '/links/slow')).toMatch(/Type: symlink[\s\S]*Size: 3999\n/);
    expect(cat(img, '/links/slow').toString()).toBe(slowTarget);

    const eaGet = (path: string, name: string): Buffer => {
      const out = join(dir, 'ea.bin');
      rmSync(out, { force: true });
      debugfs(img, `ea_get -f ${out} "${path}" ${name}`);
      return readFileSync(out);
    };
    expect(eaGet('/x/caps', 'security.capability')).toEqual(cap);
    expect(eaGet('/x/caps', 'user.note').toString()).toBe('small');
    expect(eaGet('/x/caps', 'user.empty')).toEqual(Buffer.alloc(0));
    // debugfs prints a non-ASCII name as hex bytes.
    expect(debugfs(img, 'ea_list /x/caps')).toMatch(/75 73 65 72 2e c3 a9 74 c3 a9\s+\(6\) = "summer"/);
    expect(eaGet('/x/bigx', 'user.a')).toEqual(Buffer.alloc(1500, 0xa1));
    expect(eaGet('/x/bigx', 'user.b')).toEqual(Buffer.alloc(1500, 0xb2));
    expect(eaGet('/x/bigx', 'trusted.t').toString()).toBe('in inode');
    expect(stat(img, '/x/bigx')).toMatch(/File ACL: [1-9]/); // the overflow went to an xattr block
    // Stored in ext4's compact ACL format; e2fsprogs converts back, printing 0 for the ids that have none.
    const noIds = (v: Buffer): Buffer => {
      const c = Buffer.from(v);
      for (let i = 4; i < c.length; i += 8) if (c[i] !== 0x02 && c[i] !== 0x08) c.writeUInt32LE(0, i + 4);
      return c;
    };
    expect(noIds(eaGet('/x/acl', 'system.posix_acl_access'))).toEqual(noIds(acl));
    expect(eaGet('/x/dir-with-xattr', 'security.selinux').toString()).toBe('system_u:object_r:etc_t:s0\0');

    expect(cat(img, `/deep/${deep.join('/')}/leaf`).toString()).toBe('bottom');
    expect(stat(img, '/deep/d0')).toMatch(/Links: 3/);
    expect(stat(img, '/lost+found')).toMatch(/Inode: 11\s+Type: directory\s+Mode:\s+0700[\s\S]*Size: 16384/);
    // 2 + 7 subdirectories: bin data dev links x deep lost+found
    expect(debugfs(img, 'stat <2>')).toMatch(/Links: 9\s/);
  });

  it('builds the same bytes twice', async () => {
    const hash = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
    const a = await build(variedTree(), 32 * MiB);
    const b = await build(variedTree(), 32 * MiB);
    expect(hash(a)).toBe(hash(b));
  });

  it('holds 10,000 entries in one directory and 10k+ files, in hash-indexed directories', async () => {
    const specs: Spec[] = [{ path: '/' }, { path: '/many' }, { path: '/other' }, { path: '/wide' }];
    for (let i = 0; i < 10_000; i++)
      specs.push({ path: `/many/file-${String(i).padStart(5, '0')}`, data: `#${i}` });
    for (let i = 0; i < 100; i++) specs.push({ path: `/other/e${i}`, data: '' });
    // 8,000 names of 246 bytes fill more leaves than a dx root indexes: a two-level tree.
    for (let i = 0; i < 8000; i++)
      specs.push({ path: `/wide/${String(i).padStart(6, '0')}${'w'.repeat(240)}`, data: '' });
    const img = await build(specs, 256 * MiB, { inodeCount: 20_000 });
    expect(fsckProblems(img)).toEqual([]);
    const names = debugfs(img, 'ls /many').match(/file-\d{5}/g) ?? [];
    expect(new Set(names).size).toBe(10_000);
    expect(cat(img, '/many/file-09999').toString()).toBe('#9999');
    expect(cat(img, '/many/file-00000').toString()).toBe('#0');
    expect(stat(img, '/many')).toMatch(/Flags: 0x81000/); // extents + hash index
    expect(debugfs(img, 'htree /many')).toMatch(/Hash Version: 1[\s\S]*Indirect levels: 0/);
    expect(debugfs(img, 'htree /wide')).toMatch(/Indirect levels: 1/);
    expect(stat(img, '/other')).toMatch(/Flags: 0x80000\n/); // one block: linear
  });

  it('streams a file over 200 MB, keeps a sparse file sparse and maps a fragmented one', async () => {
    const bigBlocks = (210 * MiB) / 4096;
    const bigHash = createHash('sha256');
    // Every block differs and none is zero, so all of them are allocated and written.
    async function* big(): AsyncIterable<Buffer> {
      for (let b = 0; b < bigBlocks; b += 256) {
        const chunk = Buffer.alloc(256 * 4096, 0x5a);
        for (let k = 0; k < 256; k++) chunk.writeUInt32LE(b + k, k * 4096);
        bigHash.update(chunk);
        yield chunk;
      }
    }
    const sparseSize = 1024 * MiB + 100;
    async function* sparse(): AsyncIterable<Buffer> {
      yield Buffer.from('start');
      const zeros = Buffer.alloc(MiB);
      for (let left = sparseSize - 10; left > 0; left -= Math.min(left, MiB))
        yield zeros.subarray(0, Math.min(left, MiB));
      yield Buffer.from('end!!');
    }
    // 3000 data blocks separated by holes: 3000 extents, a two-level extent tree.
    const fragBlocks = 6000;
    const frag = Buffer.alloc(fragBlocks * 4096);
    for (let b = 0; b < fragBlocks; b += 2) frag.fill(b % 251 || 1, b * 4096, b * 4096 + 4096);
    const img = await build(
      [
        { path: '/' },
        { path: '/big.bin', size: bigBlocks * 4096, chunks: big },
        { path: '/frag.bin', data: frag },
        { path: '/sparse.bin', size: sparseSize, chunks: sparse },
      ],
      512 * MiB,
    );
    expect(fsckProblems(img)).toEqual([]);
    const out = join(dir, 'dump.bin');
    debugfs(img, `dump /big.bin ${out}`);
    expect(createHash('sha256').update(readFileSync(out)).digest('hex')).toBe(bigHash.digest('hex'));
    debugfs(img, `dump /frag.bin ${out}`);
    expect(readFileSync(out).equals(frag)).toBe(true);
    rmSync(out);
    expect(debugfs(img, 'ex /frag.bin')).toMatch(/^\s*Level Entries/m);
    expect(debugfs(img, 'ex /frag.bin')).toMatch(/^\s*2\/\s*2/m); // leaves at depth 2
    const sp = stat(img, '/sparse.bin');
    expect(sp).toContain(`Size: ${sparseSize}`);
    expect(sp).toMatch(/Blockcount: 16\n/); // two 4 KiB blocks
  }, 120_000);

  it('writes the same bytes from a synchronous reader (openContentSync) as from streamed content', async () => {
    // 150 MiB runs past group 1's backup superblock at 128 MiB; every 7th block is zero (a hole), and the
    // last block is partial. Reads come in odd sizes, as a short read from a real file could.
    const size = 150 * MiB + 1234;
    const fill = (buf: Buffer, off: number, len: number, pos: number): void => {
      for (let i = 0; i < len; i++) {
        const p = pos + i;
        const block = Math.floor(p / 4096);
        buf[off + i] = block % 7 === 3 ? 0 : (block + (p & 0xff)) & 0xff || 1;
      }
    };
    const file = (sync: boolean): Entry => {
      const e = entry({
        path: '/big',
        size,
        chunks: async function* () {
          for (let pos = 0; pos < size; pos += 3 * MiB) {
            const chunk = Buffer.allocUnsafe(Math.min(3 * MiB, size - pos));
            fill(chunk, 0, chunk.length, pos);
            yield chunk;
          }
        },
      });
      if (sync) {
        let closedWith: number | undefined;
        e.openContentSync = () => ({
          read(buf, off, len, pos) {
            const n = Math.max(0, Math.min(len, 100_003, size - pos));
            fill(buf, off, n, pos);
            return n;
          },
          close(bytesRead) {
            closedWith = bytesRead;
          },
        });
        afterChecks.push(() => expect(closedWith).toBe(size));
      }
      return e;
    };
    const afterChecks: (() => void)[] = [];
    const hashOf = async (sync: boolean): Promise<string> => {
      const img = join(dir, `sync-${sync}.img`);
      const target = await openRawTarget(img, 256 * MiB);
      async function* entries(): AsyncIterable<Entry> {
        yield entry({ path: '/' });
        yield entry({ path: '/a', data: 'small' });
        yield file(sync);
        yield entry({ path: '/c', data: Buffer.alloc(5000, 1) });
      }
      try {
        await writeExt4(entries(), target, 0, baseOpts(256 * MiB));
      } finally {
        await target.finish();
      }
      expect(fsckProblems(img)).toEqual([]);
      const h = createHash('sha256').update(readFileSync(img)).digest('hex');
      rmSync(img);
      return h;
    };
    expect(await hashOf(true)).toBe(await hashOf(false));
    for (const check of afterChecks) check();
    expect(afterChecks.length).toBe(1);
  }, 120_000);

  it('told there are no hard links, writes the same bytes without indexing paths, and refuses one that comes', async () => {
    const hash = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
    const noLinks = variedTree().filter((s) => s.type !== 'hardlink');
    const indexed = await build(noLinks, 32 * MiB);
    const unindexed = await build(noLinks, 32 * MiB, { hardLinks: false });
    expect(hash(unindexed)).toBe(hash(indexed));
    const refused = await build(variedTree(), 32 * MiB, { hardLinks: false }).catch((err: unknown) => err);
    expect(isCloudletsError(refused) && refused.code === 'ESOURCE' && refused.where).toBe('/links/su-hard');
  });

  it('refuses content larger than the filesystem, or more files than inodes, with a CloudletsError', async () => {
    const img = join(dir, 'small.img');
    const attempt = async (specs: Spec[], opts: Partial<Ext4Options>): Promise<unknown> => {
      const target = await openRawTarget(img, 4 * MiB);
      try {
        return await writeExt4(stream(specs), target, 0, { ...baseOpts(4 * MiB), ...opts });
      } catch (err) {
        return err;
      } finally {
        await target.finish();
      }
    };
    const big = await attempt([{ path: '/' }, { path: '/f', data: Buffer.alloc(8 * MiB, 1) }], {});
    expect(isCloudletsError(big) && big.code === 'EOUTPUT' && big.where === '/f').toBe(true);
    const files: Spec[] = [
      { path: '/' },
      ...Array.from({ length: 40 }, (_, i) => ({ path: `/f${i}`, data: '' })),
    ];
    const many = await attempt(files, { inodeCount: 32 });
    expect(isCloudletsError(many) && many.code === 'EOUTPUT' && /only 32 inodes/.test(many.message)).toBe(
      true,
    );
  });

  it('refuses, before writing, content that a metadata pre-pass shows will not fit', async () => {
    const specs: Spec[] = [
      { path: '/' },
      {
        path: '/f',
        size: 64 * MiB,
        chunks: () => {
          throw new Error('content must not be read');
        },
      },
    ];
    const tally = createExt4Tally();
    for await (const e of stream(specs)) tally.add(e);
    const img = join(dir, 'refused.img');
    const target = await openRawTarget(img, 16 * MiB);
    const err = await writeExt4(stream(specs), target, 0, {
      ...baseOpts(16 * MiB),
      stats: tally.result(),
    }).catch((e: unknown) => e);
    await target.finish();
    expect(isCloudletsError(err) && err.code === 'EOUTPUT' && /at least \d+ bytes/.test(err.message)).toBe(
      true,
    );
    expect(readFileSync(img).equals(Buffer.alloc(16 * MiB))).toBe(true); // nothing written
  });

  it('writes a directory whose content comes after siblings that extend its name (/a, /a-b, /a/x)', async () => {
    // Byte order of full paths, as sources yield them: /usr/lib/python3, /usr/lib/python3.11/..., then
    // /usr/lib/python3/...; a directory big enough to need several blocks is taken up again.
    const specs: Spec[] = [
      { path: '/' },
      { path: '/usr' },
      { path: '/usr/lib' },
      { path: '/usr/lib/python3' },
      { path: '/usr/lib/python3.11' },
      { path: '/usr/lib/python3.11/os.py', data: 'os' },
      { path: '/usr/lib/python3-dev', data: 'x' },
      { path: '/usr/lib/python3/dist-packages' },
      { path: '/usr/lib/python3/dist-packages.d' },
      { path: '/usr/lib/python3/dist-packages.d/f', data: 'f' },
      { path: '/usr/lib/python3 b', data: 'space' },
    ];
    for (let i = 0; i < 300; i++)
      specs.push({ path: `/usr/lib/python3/dist-packages/module-with-a-long-name-${i}.py`, data: `${i}` });
    const img = await build(specs, 16 * MiB);
    expect(fsckProblems(img)).toEqual([]);
    const names = (d: string) =>
      debugfs(img, `ls -p "${d}"`)
        .split('\n')
        .map((l) => l.split('/')[5])
        .filter((n): n is string => !!n && n !== '.' && n !== '..')
        .sort();
    expect(names('/usr/lib')).toEqual(['python3', 'python3 b', 'python3-dev', 'python3.11']);
    expect(names('/usr/lib/python3')).toEqual(['dist-packages', 'dist-packages.d']);
    expect(names('/usr/lib/python3/dist-packages')).toHaveLength(300);
    expect(cat(img, '/usr/lib/python3.11/os.py').toString()).toBe('os');
    // The size tally follows the same directories: the big one's names all count there. Six other
    // directories of one block each, and lost+found's four.
    const tally = createExt4Tally();
    for await (const e of stream(specs)) tally.add(e);
    const bigNames = specs
      .filter((s) => s.path.includes('/dist-packages/'))
      .map((s) => s.path.split('/')[5]!.length);
    expect(dirBlockCount(bigNames)).toBeGreaterThan(1);
    expect(tally.result().dirBlocks).toBe(dirBlockCount(bigNames) + 6 + 4);
  });

  it('estimates a size the tree fits in', async () => {
    const specs = variedTree();
    for (let i = 0; i < 3000; i++)
      specs.push({ path: `/bulk/f${i}`, data: Buffer.alloc(5000, i % 255 || 1) });
    specs.push({ path: '/bulk' });
    const tally = createExt4Tally();
    for await (const e of stream(specs)) tally.add(e);
    const size = estimateExt4Size(tally.result());
    expect(size % MiB).toBe(0);
    const img = await build(specs, size);
    expect(fsckProblems(img)).toEqual([]);
  });
});
