import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endOfArchive, file, rawMember, run, sampleEntries, tarBytes } from '../../test/tar-fixtures.js';
import { encodeHeader } from './pax-writer.js';
import { readTar, type TarHeader } from './reader.js';

async function* chunked(buf: Buffer, size = 1000): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readAll(buf: Buffer, chunk?: number) {
  const out: Array<{ header: TarHeader; data: Buffer }> = [];
  for await (const m of readTar(chunked(buf, chunk), { where: 'test.tar' })) {
    const parts: Buffer[] = [];
    for await (const c of m.content()) parts.push(Buffer.from(c));
    out.push({ header: m.header, data: Buffer.concat(parts) });
  }
  return out;
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cloudlets-reader-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('readTar', () => {
  it('reads back everything our writer wrote, whatever the chunking', async () => {
    const entries = sampleEntries().filter((e) => e.type !== 'socket');
    const bytes = await tarBytes(entries);
    for (const chunk of [1, 511, 4096, 1 << 20]) {
      if (chunk === 1 && bytes.length > 1 << 20) continue;
      const got = await readAll(bytes, chunk);
      expect(got.length).toBe(entries.length);
      for (const [i, e] of entries.entries()) {
        const { header: h, data } = got[i]!;
        const name = Buffer.concat([
          Buffer.from('.'),
          e.path,
          Buffer.from(e.type === 'dir' && e.path.length > 1 ? '/' : ''),
        ]);
        expect(h.name).toEqual(e.path.length === 1 ? Buffer.from('./') : name);
        expect([h.type, h.mode, h.uid, h.gid, h.mtimeNs, h.size]).toEqual([
          e.type,
          e.mode,
          e.uid,
          e.gid,
          e.mtimeNs,
          e.size,
        ]);
        expect(h.xattrs).toEqual(new Map(e.xattrs));
        if (e.type === 'symlink') expect(h.linkname).toEqual(e.linkTarget);
        if (e.type === 'char' || e.type === 'block')
          expect([h.devMajor, h.devMinor]).toEqual([e.devMajor, e.devMinor]);
        if (e.uname) expect([h.uname, h.gname]).toEqual([e.uname, e.gname]);
        if (e.type === 'file') {
          const parts: Buffer[] = [];
          for await (const c of e.content!()) parts.push(c);
          expect(data.equals(Buffer.concat(parts))).toBe(true);
        }
      }
    }
  });

  it('reads GNU long names and links (L/K) and base-256 ids', async () => {
    const tree = mkdtempSync(join(dir, 'gnu-'));
    const long = 'n'.repeat(150);
    writeFileSync(join(tree, long), 'content');
    run('ln', ['-s', `/${'t'.repeat(120)}`, join(tree, 'link')]);
    const archive = join(dir, 'gnu.tar');
    const r = run('tar', [
      '--format=gnu',
      '--owner=3000000',
      '--group=4294967294',
      '-cf',
      archive,
      '-C',
      tree,
      '.',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const got = await readAll(await import('node:fs').then((fs) => fs.readFileSync(archive)));
    const byName = new Map(got.map((m) => [m.header.name.toString(), m]));
    const f = byName.get(`./${long}`)!;
    expect(f.data.toString()).toBe('content');
    expect([f.header.uid, f.header.gid]).toEqual([3000000, 4294967294]);
    expect(byName.get('./link')!.header.linkname.toString()).toBe(`/${'t'.repeat(120)}`);
  });

  it('reads LIBARCHIVE.xattr (base64) as bsdtar writes it', async () => {
    const tree = mkdtempSync(join(dir, 'bsd-'));
    writeFileSync(join(tree, 'f'), 'x');
    const set = run('setfattr', ['-n', 'user.bin', '-v', '0x00ff0a3d00', join(tree, 'f')]);
    if (set.code !== 0) return console.log(`skipping: setfattr failed here: ${set.stderr}`);
    const archive = join(dir, 'bsd.tar');
    expect(run('bsdtar', ['--format=pax', '--xattrs', '-cf', archive, '-C', tree, '.']).code).toBe(0);
    const bytes = await import('node:fs').then((fs) => fs.readFileSync(archive));
    expect(bytes.includes('LIBARCHIVE.xattr.user.bin')).toBe(true);
    const got = await readAll(bytes);
    expect(got.find((m) => m.header.name.toString() === './f')!.header.xattrs.get('user.bin')).toEqual(
      Buffer.from([0, 0xff, 0x0a, 0x3d, 0]),
    );
  });
});

describe('readTar on bad input', () => {
  const good = () => tarBytes([file('/etc/hostname', 'web1\n'), file('/etc/big', Buffer.alloc(5000, 1))]);

  it('names the archive and the byte offset of a bad header checksum', async () => {
    const bytes = await good();
    bytes[1034] = bytes[1034]! ^ 0xff; // second header, after /etc/hostname's one block of content
    await expect(readAll(bytes)).rejects.toMatchObject({
      code: 'ESOURCE',
      where: 'test.tar',
      message: expect.stringMatching(/^byte 1024: not a tar header \(bad checksum\)/),
    });
  });

  it('reports truncation inside content and a missing end marker', async () => {
    const bytes = await good();
    await expect(readAll(bytes.subarray(0, 1024 + 512 + 3000))).rejects.toThrow(/truncated archive/);
    await expect(readAll(bytes.subarray(0, 1024 + 512 + 5120))).rejects.toThrow(/no end-of-archive marker/);
    await expect(readAll(bytes.subarray(0, 700))).rejects.toThrow(/truncated/);
  });

  it('refuses what is not a tar archive, and unsupported member types', async () => {
    await expect(readAll(Buffer.from('hello world, not an archive'.repeat(40)))).rejects.toThrow(
      /not a tar header/,
    );
    const sparse = rawMember('sparse', 'file', { body: 'x', encode: (e) => encodeHeader(e) });
    sparse[156] = 0x53; // 'S'
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : sparse[i]!;
    sparse.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await expect(readAll(Buffer.concat([sparse, endOfArchive()]))).rejects.toThrow(
      /member "sparse"\): GNU sparse file \(type 'S'\) is not supported/,
    );
  });

  it('refuses a malformed or oversized pax header without hanging', async () => {
    const h = encodeHeader(file(`/${'x'.repeat(300)}`, ''));
    const bad = Buffer.from(h);
    bad.write('99', 512, 'latin1'); // record length now wrong
    await expect(readAll(Buffer.concat([bad, endOfArchive()]))).rejects.toThrow(/malformed pax/);
    const huge = Buffer.from(h);
    huge.write('77777777777\0', 124, 'latin1');
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : huge[i]!;
    huge.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await expect(readAll(Buffer.concat([huge, endOfArchive()]))).rejects.toThrow(/unreasonable size/);
  });
});
