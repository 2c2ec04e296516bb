import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  endOfArchive,
  entry,
  file,
  rawMember,
  run,
  sampleEntries,
  tarBytes,
} from '../../../test/tar-fixtures.js';
import { encodeHeader } from '../../tar/pax-writer.js';
import type { Entry } from '../entry.js';
import { openTarSource, type TarSourceOptions } from './tar.js';

let dir: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cloudlets-tarsrc-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Compress = 'none' | 'gzip' | 'zstd';
function save(bytes: Buffer, how: Compress = 'none'): string {
  const path = join(dir, `a${n++}.tar`);
  writeFileSync(path, how === 'gzip' ? gzipSync(bytes) : bytes);
  if (how === 'zstd') {
    expect(run('zstd', ['-q', '--rm', '-f', path, '-o', `${path}.zst`]).code).toBe(0);
    return `${path}.zst`;
  }
  return path;
}

async function collect(file: string, opts?: TarSourceOptions) {
  const src = await openTarSource(file, opts);
  const out: Array<Entry & { data?: Buffer }> = [];
  try {
    for await (const e of src.entries()) {
      const item: Entry & { data?: Buffer } = { ...e };
      if (e.content) {
        const parts: Buffer[] = [];
        for await (const c of e.content()) parts.push(Buffer.from(c));
        item.data = Buffer.concat(parts);
      }
      out.push(item);
    }
  } finally {
    await src.close?.();
  }
  return out;
}

async function body(e: Entry): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of e.content?.() ?? []) parts.push(c);
  return Buffer.concat(parts);
}

const strip = ({ content: _c, data: _d, targetSize: _t, ...rest }: Entry & { data?: Buffer }) => ({
  ...rest,
  xattrs: new Map(rest.xattrs),
  linkTarget: rest.linkTarget,
  uname: rest.uname,
  gname: rest.gname,
  devMajor: rest.type === 'char' || rest.type === 'block' ? rest.devMajor : undefined,
  devMinor: rest.type === 'char' || rest.type === 'block' ? rest.devMinor : undefined,
});

describe('openTarSource', () => {
  it.each<Compress>(['none', 'gzip', 'zstd'])('round-trips our own archive (%s)', async (how) => {
    const entries = sampleEntries().filter((e) => e.type !== 'socket');
    const got = await collect(save(await tarBytes(entries), how));
    expect(got.map((e) => e.path.toString('latin1'))).toEqual(entries.map((e) => e.path.toString('latin1')));
    for (const [i, e] of entries.entries()) {
      expect(strip(got[i]!)).toEqual(strip(e));
      if (e.type === 'file') expect(got[i]!.data!.equals(await body(e))).toBe(true);
    }
  });

  it.each<[Compress, TarSourceOptions]>([
    ['none', {}],
    ['gzip', {}],
    ['gzip', { smallFilesBudget: 0, batchBudget: 0 }],
    ['gzip', { smallFilesBudget: 0, batchBudget: 20000, batchFileMax: 5000 }],
    ['zstd', { smallFilesBudget: 0, batchBudget: 20000 }],
  ])('sorts an archive in arbitrary order (%s, %j)', async (how, opts) => {
    const names = Array.from({ length: 40 }, (_, i) => `/d/f${String((i * 17) % 40).padStart(2, '0')}`);
    const members = [entry('/', 'dir'), ...names.map((p, i) => file(p, `${p} `.repeat(i * 30 + 1)))];
    const bytes = await tarBytes(members); // the writer keeps the order it is given
    const got = await collect(save(bytes, how), opts);
    expect(got.map((e) => e.path.toString())).toEqual(['/', '/d', ...[...names].sort()]);
    expect(got[1]).toMatchObject({ type: 'dir', mode: 0o755, uid: 0, gid: 0 }); // synthesised parent
    for (const e of got.slice(2)) {
      const i = names.indexOf(e.path.toString());
      expect(e.data!.toString(), e.path.toString()).toBe(`${e.path} `.repeat(i * 30 + 1));
    }
  });

  it('reads GNU tar and bsdtar archives of a real tree (gzip, zstd)', async () => {
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'etc/deep'), { recursive: true });
    writeFileSync(join(tree, 'etc/hostname'), 'web1\n');
    writeFileSync(join(tree, 'etc/deep/big'), Buffer.alloc(300_000, 7));
    symlinkSync('/etc/hostname', join(tree, 'link'));
    run('ln', [join(tree, 'etc/hostname'), join(tree, 'a-hardlink')]);
    const gnu = join(dir, 'gnu.tar.gz');
    expect(run('tar', ['--format=pax', '-czf', gnu, '-C', tree, '.']).code).toBe(0);
    const bsd = join(dir, 'bsd.tar.zst');
    expect(run('bsdtar', ['--zstd', '-cf', bsd, '-C', tree, 'etc', 'link', 'a-hardlink']).code).toBe(0);
    for (const archive of [gnu, bsd]) {
      const got = await collect(archive);
      const by = new Map(got.map((e) => [e.path.toString(), e]));
      expect([...by.keys()]).toEqual([
        '/',
        '/a-hardlink',
        '/etc',
        '/etc/deep',
        '/etc/deep/big',
        '/etc/hostname',
        '/link',
      ]);
      // The first name in path order carries the content; the other links to it.
      expect(by.get('/a-hardlink')).toMatchObject({ type: 'file', size: 5 });
      expect(by.get('/a-hardlink')!.data!.toString()).toBe('web1\n');
      expect(by.get('/etc/hostname')).toMatchObject({
        type: 'hardlink',
        linkTarget: Buffer.from('/a-hardlink'),
        targetSize: 5, // and its content, for a filter that leaves out /a-hardlink
      });
      expect(by.get('/etc/hostname')!.data!.toString()).toBe('web1\n');
      expect(by.get('/etc/deep/big')!.data!.equals(Buffer.alloc(300_000, 7))).toBe(true);
      expect(by.get('/link')!.linkTarget!.toString()).toBe('/etc/hostname');
      const st = lstatSync(join(tree, 'etc/deep/big'));
      expect(by.get('/etc/deep/big')!.mode).toBe(st.mode & 0o7777);
    }
  });

  it('normalises member names, keeps the last duplicate and refuses ..', async () => {
    const enc = (e: Entry) => encodeHeader(e);
    const bytes = Buffer.concat([
      rawMember('etc/a', 'file', { body: 'one', encode: enc }),
      rawMember('/etc/b', 'file', { body: 'b', encode: enc }),
      rawMember('./etc//a', 'file', { body: 'two', encode: enc }),
      rawMember('./', 'dir', { encode: enc, mode: 0o700 }),
      endOfArchive(),
    ]);
    const got = await collect(save(bytes));
    expect(got.map((e) => [e.path.toString(), e.data?.toString()])).toEqual([
      ['/', undefined],
      ['/etc', undefined],
      ['/etc/a', 'two'],
      ['/etc/b', 'b'],
    ]);
    expect(got[0]!.mode).toBe(0o700);
    const evil = save(
      Buffer.concat([rawMember('etc/../../x', 'file', { body: 'x', encode: enc }), endOfArchive()]),
    );
    await expect(openTarSource(evil)).rejects.toMatchObject({
      code: 'ESOURCE',
      where: evil,
      message: expect.stringContaining('"etc/../../x"'),
    });
  });

  it('reports corrupt and truncated archives as ESOURCE naming the file', async () => {
    const bytes = await tarBytes([file('/x', Buffer.alloc(100_000, 1))]);
    const truncated = save(bytes.subarray(0, 50_000), 'gzip');
    await expect(openTarSource(truncated)).rejects.toMatchObject({ code: 'ESOURCE', where: truncated });
    const gz = gzipSync(bytes);
    const badGzip = join(dir, 'bad.tar.gz');
    writeFileSync(badGzip, gz.subarray(0, gz.length - 30));
    await expect(openTarSource(badGzip)).rejects.toMatchObject({ code: 'ESOURCE', where: badGzip });
    const badZstd = join(dir, 'bad.tar.zst');
    const zst = readFileSync(save(bytes, 'zstd'));
    writeFileSync(badZstd, zst.subarray(0, zst.length - 10));
    await expect(openTarSource(badZstd)).rejects.toMatchObject({ code: 'ESOURCE', where: badZstd });
    const xz = join(dir, 'x.tar.xz');
    writeFileSync(xz, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]));
    await expect(openTarSource(xz)).rejects.toThrow(/xz-compressed archives are not supported/);
  });
});

describe('readFile', () => {
  let archives: string[];
  beforeAll(async () => {
    const bytes = await tarBytes([
      entry('/', 'dir'),
      entry('/etc', 'dir'),
      file('/etc/hostname', 'web1\n'),
      entry('/etc/hl', 'hardlink', { linkTarget: Buffer.from('/etc/hostname') }),
      entry('/etc/loop1', 'symlink', { linkTarget: Buffer.from('loop2') }),
      entry('/etc/loop2', 'symlink', { linkTarget: Buffer.from('/etc/loop1') }),
      entry('/etc/name', 'symlink', { linkTarget: Buffer.from('/etc/hostname') }),
      entry('/etc/rel', 'symlink', { linkTarget: Buffer.from('../etc/./hostname') }),
      entry('/etc/up', 'symlink', { linkTarget: Buffer.from('../../../etc/passwd') }),
      entry('/lnk', 'symlink', { linkTarget: Buffer.from('etc') }),
    ]);
    archives = [save(bytes), save(bytes, 'gzip'), save(bytes, 'zstd')];
  });

  it('follows symlinks and hardlinks inside the image', async () => {
    for (const a of archives) {
      const src = await openTarSource(a);
      for (const p of [
        '/etc/hostname',
        'etc/hostname',
        '/etc/name',
        '/etc/rel',
        '/etc/hl',
        '/lnk/name',
        '/lnk/../etc/hl',
      ]) {
        expect((await src.readFile(p))?.toString(), `${a} ${p}`).toBe('web1\n');
      }
      expect(await src.readFile('/etc/missing')).toBeUndefined();
      expect(await src.readFile('/etc/hostname/x')).toBeUndefined();
      await expect(src.readFile('/etc/up')).rejects.toMatchObject({ code: 'EPATH', where: '/etc/up' });
      await expect(src.readFile('/../etc/hostname')).rejects.toMatchObject({ code: 'EPATH' });
      await expect(src.readFile('/etc/loop1')).rejects.toThrow(/more than 40 symbolic links/);
      await expect(src.readFile('/etc')).rejects.toThrow(/not a regular file/);
      await src.close?.();
    }
  });
});
