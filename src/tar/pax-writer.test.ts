import { describe, expect, it } from 'vitest';
import {
  BAD_NAME,
  CAPABILITY,
  entry,
  file,
  LONG_COMPONENT,
  LONG_NAME,
  sampleEntries,
  T0,
  tarBytes,
} from '../../test/tar-fixtures.js';
import { BLOCK, FIELD, parsePaxRecords, RECORD, readBytes, readNumber, writeNumber } from './header.js';
import { archiveName, encodeHeader, formatPaxTime, splitUstarName } from './pax-writer.js';

/** The pax records (if any) and the ustar block of an encoded header. */
function decode(buf: Buffer) {
  const flag = String.fromCharCode(buf[156]!);
  if (flag !== 'x') return { pax: new Map<string, Buffer>(), block: buf.subarray(0, BLOCK) };
  const size = Number(readNumber(buf, FIELD.size[0], FIELD.size[1]));
  const records = parsePaxRecords(buf.subarray(BLOCK, BLOCK + size))!;
  const block = buf.subarray(buf.length - BLOCK);
  return { pax: new Map(records.map((r) => [r.key, r.value])), block };
}
const field = (block: Buffer, name: keyof typeof FIELD) => readBytes(block, FIELD[name][0], FIELD[name][1]);
const num = (block: Buffer, name: keyof typeof FIELD) => readNumber(block, FIELD[name][0], FIELD[name][1]);

describe('archive names', () => {
  it('roots paths at ./ and marks directories with a slash', () => {
    expect(archiveName(Buffer.from('/'), true).toString()).toBe('./');
    expect(archiveName(Buffer.from('/etc'), true).toString()).toBe('./etc/');
    expect(archiveName(Buffer.from('/etc/hostname'), false).toString()).toBe('./etc/hostname');
  });
});

describe('encodeHeader', () => {
  it('writes a plain ustar header when nothing needs pax', () => {
    const buf = encodeHeader(file('/etc/hostname', 'h\n', { mode: 0o644, uid: 1, gid: 2 }));
    expect(buf.length).toBe(BLOCK);
    const { block } = decode(buf);
    expect(block.toString('latin1', 257, 265)).toBe('ustar\u000000');
    expect(field(block, 'name').toString()).toBe('./etc/hostname');
    expect(num(block, 'mode')).toBe(0o644n);
    expect(num(block, 'size')).toBe(2n);
    expect(num(block, 'mtime')).toBe(T0 / 1_000_000_000n);
  });

  it('splits a long name into prefix and name, and puts what does not fit in a pax path', () => {
    const split = decode(encodeHeader(file(LONG_NAME, 'x')));
    expect(split.pax.size).toBe(0);
    const joined = `${field(split.block, 'prefix')}/${field(split.block, 'name')}`;
    expect(joined).toBe(`.${LONG_NAME}`);
    const { pax, block } = decode(encodeHeader(file(LONG_COMPONENT, 'x')));
    expect(pax.get('path')!.toString()).toBe(`.${LONG_COMPONENT}`);
    expect(block.toString('latin1', 156, 157)).toBe('0');
    expect(pax.has('hdrcharset')).toBe(false);
    expect(splitUstarName(Buffer.from(`./${'d'.repeat(200)}/`))).toBeUndefined();
    expect(splitUstarName(Buffer.from(`./${'d'.repeat(120)}/e/`))).toEqual({
      prefix: Buffer.from(`./${'d'.repeat(120)}`),
      name: Buffer.from('e/'),
    });
  });

  it('keeps non-ASCII names raw in the fields; a long one goes to pax as hdrcharset=BINARY', () => {
    const short = decode(encodeHeader(file(BAD_NAME, 'x')));
    expect(short.pax.size).toBe(0);
    expect(field(short.block, 'name')).toEqual(Buffer.concat([Buffer.from('.'), BAD_NAME]));
    const utf8 = decode(encodeHeader(file('/caf\u00e9', 'x')));
    expect(utf8.pax.size).toBe(0);
    expect(field(utf8.block, 'name').toString()).toBe('./caf\u00e9');
    const longName = Buffer.concat([BAD_NAME, Buffer.from('y'.repeat(120))]);
    const long = decode(encodeHeader(file(longName, 'x')));
    expect(long.pax.get('hdrcharset')!.toString()).toBe('BINARY');
    expect(long.pax.get('path')).toEqual(Buffer.concat([Buffer.from('.'), longName]));
  });

  it('writes names with newlines exactly', () => {
    const nl = decode(encodeHeader(file('/a/nl\nname', 'x')));
    expect(field(nl.block, 'name').toString()).toBe('./a/nl\nname');
  });

  it('stores ids beyond the octal field in pax uid/gid records', () => {
    const { pax, block } = decode(encodeHeader(file('/f', 'x', { uid: 4294967294, gid: 3000000 })));
    expect(pax.get('uid')!.toString()).toBe('4294967294');
    expect(pax.get('gid')!.toString()).toBe('3000000');
    // The field carries base-256 for readers without pax.
    expect(num(block, 'uid')).toBe(4294967294n);
    expect(num(block, 'gid')).toBe(3000000n);
    const small = decode(encodeHeader(file('/f', 'x', { uid: 2097151, gid: 65534 })));
    expect(small.pax.size).toBe(0);
    expect(num(small.block, 'uid')).toBe(2097151n);
  });

  it('stores a size above 8 GiB in a pax size record', () => {
    const size = 9 * 2 ** 30;
    const { pax, block } = decode(encodeHeader(entry('/huge', 'file', { size })));
    expect(pax.get('size')!.toString()).toBe(String(size));
    expect(num(block, 'size')).toBe(BigInt(size));
    expect(decode(encodeHeader(entry('/8g', 'file', { size: 8 * 2 ** 30 - 1 }))).pax.size).toBe(0);
  });

  it.each([0o4755, 0o2755, 0o1777, 0o7777, 0o600])('keeps mode %o whole', (mode) => {
    const { block } = decode(encodeHeader(entry('/d', 'dir', { mode })));
    expect(num(block, 'mode')).toBe(BigInt(mode));
  });

  it('writes devices, fifos, symlinks and hardlinks', () => {
    const chr = decode(encodeHeader(entry('/dev/null', 'char', { devMajor: 1, devMinor: 3 }))).block;
    expect([chr[156], num(chr, 'devmajor'), num(chr, 'devminor')]).toEqual([0x33, 1n, 3n]);
    const blk = decode(encodeHeader(entry('/dev/sda', 'block', { devMajor: 259, devMinor: 1048575 }))).block;
    expect([blk[156], num(blk, 'devmajor'), num(blk, 'devminor')]).toEqual([0x34, 259n, 1048575n]);
    expect(decode(encodeHeader(entry('/p', 'fifo'))).block[156]).toBe(0x36);
    const sl = decode(encodeHeader(entry('/s', 'symlink', { linkTarget: Buffer.from('/etc/x') }))).block;
    expect([sl[156], field(sl, 'linkname').toString()]).toEqual([0x32, '/etc/x']);
    const hl = decode(encodeHeader(entry('/b/h', 'hardlink', { linkTarget: Buffer.from('/a/f') }))).block;
    expect([hl[156], field(hl, 'linkname').toString(), num(hl, 'size')]).toEqual([0x31, './a/f', 0n]);
  });

  it('stores binary xattrs raw and byte-exact, sorted by name', () => {
    const xattrs = new Map([
      ['user.z', Buffer.from('z')],
      ['security.capability', CAPABILITY],
    ]);
    const buf = encodeHeader(file('/f', 'x', { xattrs }));
    const { pax } = decode(buf);
    expect(pax.get('SCHILY.xattr.security.capability')).toEqual(CAPABILITY);
    expect(pax.get('SCHILY.xattr.user.z')!.toString()).toBe('z');
    expect(buf.indexOf('security.capability')).toBeLessThan(buf.indexOf('user.z'));
  });

  it('writes uname/gname, in pax when too long', () => {
    const long = 'g'.repeat(40);
    const { pax, block } = decode(encodeHeader(file('/f', 'x', { uname: 'alice', gname: long })));
    expect(field(block, 'uname').toString()).toBe('alice');
    expect(pax.has('uname')).toBe(false);
    expect(pax.get('gname')!.toString()).toBe(long);
  });

  it('clamps mtime and writes fractions and negative times in pax', () => {
    const late = file('/f', 'x', { mtimeNs: T0 + 5_000_000_000n + 7n });
    const clamped = decode(encodeHeader(late, { mtimeClampNs: T0 }));
    expect(clamped.pax.has('mtime')).toBe(false);
    expect(num(clamped.block, 'mtime')).toBe(T0 / 1_000_000_000n);
    const early = decode(encodeHeader(file('/f', 'x', { mtimeNs: 5_000_000_000n }), { mtimeClampNs: T0 }));
    expect(num(early.block, 'mtime')).toBe(5n);
    expect(decode(encodeHeader(late)).pax.get('mtime')!.toString()).toBe('1600000005.000000007');
    expect(
      decode(encodeHeader(file('/f', 'x', { mtimeNs: -1_500_000_000n })))
        .pax.get('mtime')!
        .toString(),
    ).toBe('-1.5');
    expect(formatPaxTime(-500_000_000n)).toBe('-0.5');
    expect(formatPaxTime(1_100_000_000n)).toBe('1.1');
  });

  it('refuses sockets', () => {
    expect(() => encodeHeader(entry('/s', 'socket'))).toThrow(/socket/);
  });
});

describe('numbers', () => {
  it('round-trips octal and base-256', () => {
    const b = Buffer.alloc(12);
    for (const v of [0n, 7n, 8589934591n, 8589934592n, 2n ** 62n, -1n, -(2n ** 40n)]) {
      writeNumber(b, 0, 12, v);
      expect(readNumber(b, 0, 12)).toBe(v);
    }
  });
});

describe('whole archives', () => {
  it('are reproducible byte for byte and padded to 10240-byte records', async () => {
    const a = await tarBytes(sampleEntries(), { mtimeClampNs: T0 });
    const b = await tarBytes(sampleEntries(), { mtimeClampNs: T0 });
    expect(a.equals(b)).toBe(true);
    expect(a.length % RECORD).toBe(0);
    expect(a.subarray(a.length - 2 * BLOCK).every((x) => x === 0)).toBe(true);
    // No process ids, atime or ctime.
    expect(a.indexOf('atime=')).toBe(-1);
    expect(a.indexOf('ctime=')).toBe(-1);
  });
});
