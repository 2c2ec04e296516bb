/**
 * Encodes one entry's header blocks: an optional pax extended header ('x') and the ustar header.
 *
 * Our own encoder rather than tar-stream: tar-stream 3.2.2 writes uid/gid above 262143 as 262143 and
 * corrupts binary pax values (a `security.capability` xattr holds NUL bytes), and node-tar / modern-tar
 * lack xattrs or device numbers. The format is small enough to own, and owning it lets the sink build
 * headers straight into its write batches.
 *
 * Archive names: the image root is `./`, directories `./etc/`, others `./etc/hostname`, the layout of
 * `tar -C rootfs -cf - .`. GNU tar and bsdtar both restore the root directory's own mode, owner and
 * mtime from the `./` member when extracting as root.
 */
import { CloudletsError } from '../errors.js';
import type { Entry } from '../stream/entry.js';
import { BLOCK, FIELD, isAscii, octalMax, paxRecord, writeChecksum, writeNumber } from './header.js';

const TYPEFLAG: Record<Exclude<Entry['type'], 'socket'>, number> = {
  file: 0x30, // '0'
  hardlink: 0x31, // '1'
  symlink: 0x32, // '2'
  char: 0x33, // '3'
  block: 0x34, // '4'
  dir: 0x35, // '5'
  fifo: 0x36, // '6'
};

const DOT_SLASH = Buffer.from('./');
const SLASH = 0x2f;

/** The archive member name of an image path: `/` → `./`, `/etc` (dir) → `./etc/`, `/etc/x` → `./etc/x`. */
export function archiveName(imagePath: Buffer, isDir: boolean): Buffer {
  let start = 0;
  while (start < imagePath.length && imagePath[start] === SLASH) start++;
  const rest = imagePath.subarray(start);
  if (rest.length === 0) return DOT_SLASH;
  const parts = [DOT_SLASH, rest];
  if (isDir && rest[rest.length - 1] !== SLASH) parts.push(Buffer.from('/'));
  return Buffer.concat(parts);
}

export interface HeaderOptions {
  /** Every mtime above this is written as this (SOURCE_DATE_EPOCH semantics). */
  mtimeClampNs?: bigint | undefined;
}

const NS = 1_000_000_000n;
const MAX_OCTAL_12 = BigInt(octalMax(12));
const MAX_ID = octalMax(8);

/** `sec[.frac]` with the fraction's trailing zeros dropped; negative times keep one leading sign. */
export function formatPaxTime(ns: bigint): string {
  const neg = ns < 0n;
  const abs = neg ? -ns : ns;
  const sec = abs / NS;
  let frac = Number(abs % NS);
  if (frac === 0) return `${neg ? '-' : ''}${sec}`;
  let digits = 9;
  while (frac % 10 === 0) {
    frac /= 10;
    digits--;
  }
  return `${neg ? '-' : ''}${sec}.${String(frac).padStart(digits, '0')}`;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n ? q - 1n : q;
}

/** Writes raw bytes into a fixed field, truncated to its width (the pax record carries the full value). */
function putBytes(out: Buffer, at: number, width: number, bytes: Buffer): void {
  bytes.copy(out, at, 0, Math.min(bytes.length, width));
}

/** The header blocks of one entry (a multiple of 512 bytes) in a new buffer. */
export function encodeHeader(entry: Entry, opts: HeaderOptions = {}): Buffer {
  const h = prepareHeader(entry, opts);
  const out = Buffer.alloc(h.size);
  h.writeTo(out, 0);
  return out;
}

export interface PreparedHeader {
  /** Bytes the header blocks take: 512, or more with a pax extended header. */
  size: number;
  /** Writes them at `at` into `buf`, whose region must be zero-filled. */
  writeTo(buf: Buffer, at: number): void;
}

/**
 * Works out one entry's header; the caller then writes it where it wants (the sink, straight into its
 * write batch, sparing a buffer per entry). Throws CloudletsError for sockets, which a tar archive cannot
 * hold; the sink skips them before calling this.
 */
export function prepareHeader(entry: Entry, opts: HeaderOptions = {}): PreparedHeader {
  if (entry.type === 'socket') {
    throw new CloudletsError('ENOTSUP', 'a socket cannot be stored in a tar archive', {
      where: entry.path.toString('utf8'),
    });
  }
  const records: Buffer[] = [];
  let binary = false;
  const name = archiveName(entry.path, entry.type === 'dir');

  // Names go in the ustar fields whenever they fit (name, or prefix + '/' + name up to 256 bytes), as
  // raw bytes, whatever their encoding: both GNU tar and bsdtar take field bytes as they are. Only a name
  // that does not fit gets a pax `path` record, and then one with `hdrcharset=BINARY` if it is not ASCII.
  // Why not UTF-8 pax paths, as the standard has them: bsdtar converts those to the current locale and,
  // under LC_ALL=C, fails on every non-ASCII name ("Pathname can't be converted from UTF-8", exit 1,
  // tested); with BINARY it keeps the raw bytes. GNU tar 1.34 does not know `hdrcharset` (it warns
  // "Ignoring unknown extended header keyword") but keeps the raw bytes too.
  const split = name.length > FIELD.name[1] ? splitUstarName(name) : undefined;
  if (name.length > FIELD.name[1] && !split) {
    if (!isAscii(name)) binary = true;
    records.push(paxRecord('path', name));
  }

  let link: Buffer | undefined;
  if (entry.type === 'symlink') link = entry.linkTarget ?? Buffer.alloc(0);
  else if (entry.type === 'hardlink') {
    if (!entry.linkTarget) {
      throw new CloudletsError('EOUTPUT', 'a hardlink entry without a target', {
        where: entry.path.toString('utf8'),
      });
    }
    link = archiveName(entry.linkTarget, false);
  }
  if (link && link.length > FIELD.linkname[1]) {
    if (!isAscii(link)) binary = true;
    records.push(paxRecord('linkpath', link));
  }

  const size = entry.type === 'file' ? entry.size : 0;
  if (size > Number(MAX_OCTAL_12)) records.push(paxRecord('size', String(size)));
  if (entry.uid > MAX_ID || entry.uid < 0) records.push(paxRecord('uid', String(entry.uid)));
  if (entry.gid > MAX_ID || entry.gid < 0) records.push(paxRecord('gid', String(entry.gid)));

  let mtimeNs = entry.mtimeNs;
  if (opts.mtimeClampNs !== undefined && mtimeNs > opts.mtimeClampNs) mtimeNs = opts.mtimeClampNs;
  const mtimeSec = floorDiv(mtimeNs, NS);
  if (mtimeNs % NS !== 0n || mtimeSec < 0n || mtimeSec > MAX_OCTAL_12) {
    records.push(paxRecord('mtime', formatPaxTime(mtimeNs)));
  }

  const uname = entry.uname !== undefined ? Buffer.from(entry.uname, 'utf8') : undefined;
  const gname = entry.gname !== undefined ? Buffer.from(entry.gname, 'utf8') : undefined;
  for (const [key, value] of [
    ['uname', uname],
    ['gname', gname],
  ] as const) {
    if (!value || value.length < FIELD.uname[1]) continue;
    if (!isAscii(value)) binary = true;
    records.push(paxRecord(key, value));
  }

  // Sorted by name so the same xattrs always give the same bytes, whatever order the source listed them.
  const xattrNames = entry.xattrs.size === 0 ? [] : [...entry.xattrs.keys()].sort();
  for (const key of xattrNames) {
    if (key.includes('=') || key.includes('\n') || key.includes('\0')) {
      throw new CloudletsError('ENOTSUP', `the xattr name ${JSON.stringify(key)} cannot be stored in pax`, {
        where: entry.path.toString('utf8'),
      });
    }
    // The raw value: GNU tar and bsdtar both restore SCHILY.xattr.* byte for byte (tested).
    records.push(paxRecord(`SCHILY.xattr.${key}`, entry.xattrs.get(key)!));
  }
  if (binary) records.unshift(paxRecord('hdrcharset', 'BINARY'));

  let paxBlocks = 0;
  let paxSize = 0;
  if (records.length > 0) {
    paxSize = records.reduce((n, r) => n + r.length, 0);
    paxBlocks = 1 + Math.ceil(paxSize / BLOCK);
  }
  const typeflag = TYPEFLAG[entry.type];
  const clampedMtime = Number(mtimeSec < 0n ? 0n : mtimeSec > MAX_OCTAL_12 ? MAX_OCTAL_12 : mtimeSec);
  return {
    size: (paxBlocks + 1) * BLOCK,
    writeTo(out: Buffer, start: number) {
      if (paxBlocks > 0) {
        // Named like GNU tar's default `%d/PaxHeaders/%f`, minus the process id, so output is reproducible.
        const base = name.subarray(name.lastIndexOf(SLASH, name.length - 2) + 1);
        const paxName = Buffer.concat([Buffer.from('./PaxHeaders/'), base]);
        fillUstar(out, start, {
          name: paxName,
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: paxSize,
          mtime: clampedMtime,
          typeflag: 0x78, // 'x'
        });
        let at = start + BLOCK;
        for (const r of records) at += r.copy(out, at);
      }

      const h = start + paxBlocks * BLOCK;
      fillUstar(out, h, {
        name: split ? split.name : name,
        prefix: split?.prefix,
        mode: entry.mode & 0o7777,
        uid: entry.uid,
        gid: entry.gid,
        size,
        mtime: clampedMtime,
        typeflag,
        linkname: link,
        uname,
        gname,
        devmajor: entry.type === 'char' || entry.type === 'block' ? (entry.devMajor ?? 0) : undefined,
        devminor: entry.type === 'char' || entry.type === 'block' ? (entry.devMinor ?? 0) : undefined,
      });
    },
  };
}

interface UstarFields {
  name: Buffer;
  prefix?: Buffer | undefined;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: number;
  linkname?: Buffer | undefined;
  uname?: Buffer | undefined;
  gname?: Buffer | undefined;
  devmajor?: number | undefined;
  devminor?: number | undefined;
}

const MAGIC = Buffer.from('ustar\u000000', 'latin1');

function fillUstar(out: Buffer, at: number, f: UstarFields): void {
  putBytes(out, at + FIELD.name[0], FIELD.name[1], f.name);
  if (f.prefix) putBytes(out, at + FIELD.prefix[0], FIELD.prefix[1], f.prefix);
  writeNumber(out, at + FIELD.mode[0], FIELD.mode[1], f.mode);
  writeNumber(out, at + FIELD.uid[0], FIELD.uid[1], f.uid);
  writeNumber(out, at + FIELD.gid[0], FIELD.gid[1], f.gid);
  writeNumber(out, at + FIELD.size[0], FIELD.size[1], f.size);
  writeNumber(out, at + FIELD.mtime[0], FIELD.mtime[1], f.mtime);
  out[at + FIELD.typeflag[0]] = f.typeflag;
  if (f.linkname) putBytes(out, at + FIELD.linkname[0], FIELD.linkname[1], f.linkname);
  MAGIC.copy(out, at + FIELD.magic[0]);
  if (f.uname) putBytes(out, at + FIELD.uname[0], FIELD.uname[1] - 1, f.uname);
  if (f.gname) putBytes(out, at + FIELD.gname[0], FIELD.gname[1] - 1, f.gname);
  if (f.devmajor !== undefined) writeNumber(out, at + FIELD.devmajor[0], FIELD.devmajor[1], f.devmajor);
  if (f.devminor !== undefined) writeNumber(out, at + FIELD.devminor[0], FIELD.devminor[1], f.devminor);
  writeChecksum(out, at);
}

/** The POSIX ustar split of a long name at a '/': prefix ≤ 155 bytes, name 1..100 bytes. */
export function splitUstarName(name: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  const last = name[name.length - 1] === SLASH ? name.length - 2 : name.length - 1;
  for (let i = name.indexOf(SLASH); i !== -1 && i <= FIELD.prefix[1]; i = name.indexOf(SLASH, i + 1)) {
    if (i >= last) return undefined;
    if (name.length - i - 1 <= FIELD.name[1])
      return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
  }
  return undefined;
}
