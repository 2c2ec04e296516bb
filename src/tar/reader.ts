/**
 * A streaming tar parser: ustar, pax ('x' and 'g' extended headers, `hdrcharset=BINARY`, xattrs as
 * `SCHILY.xattr.*` raw or `LIBARCHIVE.xattr.*` base64) and GNU (long names 'L'/'K', base-256 numbers).
 * Content is streamed, never held; only extended headers are buffered, and those are bounded. Any
 * malformed or truncated input is a CloudletsError ESOURCE naming the archive and the byte offset.
 */
import { CloudletsError } from '../errors.js';
import type { EntryType } from '../stream/entry.js';
import { BLOCK, checksum, FIELD, isZeroBlock, parsePaxRecords, readBytes, readNumber } from './header.js';

export interface TarHeader {
  /** The member name as stored (pax `path` or GNU long name applied), raw bytes. */
  name: Buffer;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  uname?: string | undefined;
  gname?: string | undefined;
  size: number;
  mtimeNs: bigint;
  /** Symlink target or hardlink target member name, raw bytes. */
  linkname: Buffer;
  devMajor: number;
  devMinor: number;
  xattrs: Map<string, Buffer>;
}

export interface TarMember {
  header: TarHeader;
  /** Offset of the member's first header block (its pax header, if any) in the uncompressed stream. */
  offset: number;
  /** Offset of its content in the uncompressed stream. */
  dataOffset: number;
  /** The content; only while this member is current. Unread content is skipped. */
  content(): AsyncGenerator<Buffer>;
}

/** Extended headers and GNU long names above this are taken as corruption, not held in memory. */
const MAX_META = 16 << 20;

/** Pulls exact byte counts out of an iterator of arbitrary chunks, counting the offset. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private at = 0;
  /** Absolute offset of the next unread byte. */
  pos = 0;
  private done = false;

  constructor(private readonly it: AsyncIterator<Buffer>) {}

  private get avail(): number {
    return this.buf.length - this.at;
  }

  private async more(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    const rest = this.buf.subarray(this.at);
    this.buf = rest.length === 0 ? r.value : Buffer.concat([rest, r.value]);
    this.at = 0;
    return true;
  }

  /** Exactly n bytes; `undefined` at a clean end (no byte left); throws 'short' on a partial read. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.avail < n) {
      if (!(await this.more())) {
        if (this.avail === 0) return undefined;
        throw new ShortRead(this.avail);
      }
    }
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    this.pos += n;
    return out;
  }

  /** n bytes as they arrive, without copying. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.avail === 0 && !(await this.more())) throw new ShortRead(n - left);
      const k = Math.min(left, this.avail);
      const out = this.buf.subarray(this.at, this.at + k);
      this.at += k;
      this.pos += k;
      left -= k;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) {
      // discarded
    }
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

class ShortRead extends Error {
  constructor(readonly got: number) {
    super('unexpected end of data');
  }
}

const TYPES: Record<string, EntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  D: 'dir', // GNU incremental dump directory: a directory whose content lists its names
  '6': 'fifo',
};

const UNSUPPORTED: Record<string, string> = {
  S: 'GNU sparse file',
  M: 'GNU multi-volume continuation',
  N: 'GNU long-name (old) member',
  A: 'Solaris ACL',
  E: 'Solaris extended attributes',
  X: 'Solaris extended header',
};

interface Overrides {
  path?: Buffer;
  linkpath?: Buffer;
  size?: number;
  uid?: number;
  gid?: number;
  mtimeNs?: bigint;
  uname?: string;
  gname?: string;
  xattrs: Map<string, Buffer>;
}

function parsePaxTime(text: string): bigint | undefined {
  const m = /^(-)?(\d+)(?:\.(\d*))?$/.exec(text);
  if (!m) return undefined;
  const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt((m[3] ?? '').slice(0, 9).padEnd(9, '0') || '0');
  return m[1] ? -ns : ns;
}

function parseUint(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** `LIBARCHIVE.xattr.` names are URL-encoded. */
function decodeXattrName(name: string): string {
  try {
    return decodeURIComponent(name);
  } catch {
    return name;
  }
}

/**
 * Applies pax records onto `into`. Unknown keywords are ignored, as POSIX asks; `GNU.sparse.*` is refused
 * because the content would come out wrong.
 */
function applyPax(body: Buffer, into: Overrides, fail: (msg: string) => never): void {
  const records = parsePaxRecords(body);
  if (!records) fail('malformed pax extended header');
  for (const { key, value } of records) {
    const text = () => value.toString('utf8');
    switch (key) {
      case 'path':
        into.path = Buffer.from(value);
        break;
      case 'linkpath':
        into.linkpath = Buffer.from(value);
        break;
      case 'size':
      case 'uid':
      case 'gid': {
        const n = parseUint(text());
        if (n === undefined) fail(`bad pax ${key} ${JSON.stringify(text())}`);
        into[key] = n;
        break;
      }
      case 'mtime': {
        const t = parsePaxTime(text());
        if (t === undefined) fail(`bad pax mtime ${JSON.stringify(text())}`);
        into.mtimeNs = t;
        break;
      }
      case 'uname':
      case 'gname':
        into[key] = text();
        break;
      default:
        if (key.startsWith('SCHILY.xattr.')) {
          into.xattrs.set(key.slice('SCHILY.xattr.'.length), Buffer.from(value));
        } else if (key.startsWith('LIBARCHIVE.xattr.')) {
          // Written by bsdtar alongside SCHILY.xattr; same value, base64. Either gives the same bytes.
          into.xattrs.set(
            decodeXattrName(key.slice('LIBARCHIVE.xattr.'.length)),
            Buffer.from(value.toString('latin1'), 'base64'),
          );
        } else if (key.startsWith('GNU.sparse.')) {
          fail('GNU sparse files are not supported');
        }
      // hdrcharset, atime, ctime, comment, charset and vendor keywords: nothing to do. Names are kept
      // as raw bytes whatever hdrcharset says.
    }
  }
}

export interface ReadTarOptions {
  /** The archive, for messages. */
  where: string;
}

/**
 * Parses a tar stream. Each member must be consumed (or left) before asking for the next one; its
 * unread content is skipped. Ends at the end-of-archive marker (a zero block); data after it is ignored.
 */
export async function* readTar(
  input: AsyncIterable<Buffer>,
  opts: ReadTarOptions,
): AsyncGenerator<TarMember> {
  const r = new ByteReader(input[Symbol.asyncIterator]());
  let global: Overrides = { xattrs: new Map() };
  let current = '';
  const failAt = (offset: number, msg: string): never => {
    throw new CloudletsError('ESOURCE', `byte ${offset}${current ? ` (member ${current})` : ''}: ${msg}`, {
      where: opts.where,
    });
  };
  try {
    for (;;) {
      const local: Overrides = { xattrs: new Map() };
      let longName: Buffer | undefined;
      let longLink: Buffer | undefined;
      const memberOffset = r.pos;
      let header: Buffer | undefined;
      let headerOffset = 0;
      current = '';
      // Meta headers ('x', 'g', 'L', 'K') come before the member they describe.
      for (;;) {
        headerOffset = r.pos;
        header = await r.read(BLOCK);
        if (!header) failAt(headerOffset, 'truncated archive: no end-of-archive marker');
        const block = header!;
        if (isZeroBlock(block)) {
          if (r.pos - BLOCK !== memberOffset) failAt(headerOffset, 'extended header without a member');
          return;
        }
        const sum = readNumber(block, FIELD.chksum[0], FIELD.chksum[1]);
        const { unsigned, signed } = checksum(block);
        if (sum === undefined || (Number(sum) !== unsigned && Number(sum) !== signed)) {
          failAt(headerOffset, 'not a tar header (bad checksum): corrupt or not a tar archive');
        }
        const flag = String.fromCharCode(block[FIELD.typeflag[0]]!);
        if (flag !== 'x' && flag !== 'g' && flag !== 'L' && flag !== 'K') break;
        const size = readNumber(block, FIELD.size[0], FIELD.size[1]);
        if (size === undefined || size < 0n || size > BigInt(MAX_META)) {
          failAt(headerOffset, `extended header of unreasonable size ${size ?? '(unreadable)'}`);
        }
        const n = Number(size);
        const body = n === 0 ? Buffer.alloc(0) : Buffer.from((await r.read(n)) ?? failAt(r.pos, 'truncated'));
        await r.skip((BLOCK - (n % BLOCK)) % BLOCK);
        const fail = (msg: string) => failAt(headerOffset, msg);
        if (flag === 'x') applyPax(body, local, fail);
        else if (flag === 'g') {
          const next: Overrides = { ...global, xattrs: new Map(global.xattrs) };
          applyPax(body, next, fail);
          global = next;
        } else {
          const nul = body.indexOf(0);
          const value = Buffer.from(nul === -1 ? body : body.subarray(0, nul));
          if (flag === 'L') longName = value;
          else longLink = value;
        }
      }
      const block = header!;
      const flag = String.fromCharCode(block[FIELD.typeflag[0]]!);
      const magic = block.toString('latin1', FIELD.magic[0], FIELD.magic[0] + 6);
      // POSIX ustar splits long names into prefix/name; old GNU ("ustar  ") uses that area otherwise.
      let name = readBytes(block, FIELD.name[0], FIELD.name[1]);
      if (magic === 'ustar\0') {
        const prefix = readBytes(block, FIELD.prefix[0], FIELD.prefix[1]);
        if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
      }
      name = local.path ?? longName ?? global.path ?? Buffer.from(name);
      current = JSON.stringify(name.toString('utf8'));

      if (UNSUPPORTED[flag]) failAt(headerOffset, `${UNSUPPORTED[flag]} (type '${flag}') is not supported`);
      const num = (field: readonly [number, number], what: string): bigint => {
        const v = readNumber(block, field[0], field[1]);
        if (v === undefined) failAt(headerOffset, `unreadable ${what} field`);
        return v!;
      };
      const fieldSize = num(FIELD.size, 'size');
      let type: EntryType | undefined = TYPES[flag];
      if (flag === 'V')
        type = undefined; // GNU volume label: not a file
      else if (!type) failAt(headerOffset, `unsupported member type '${flag.replace(/[^ -~]/g, '?')}'`);
      if (type === 'file' && name[name.length - 1] === 0x2f) type = 'dir'; // pre-POSIX directories
      const size = local.size ?? global.size ?? Number(fieldSize);
      if (!Number.isSafeInteger(size) || size < 0) failAt(headerOffset, `bad size ${size}`);
      // Hardlinks, symlinks, devices and directories have no content in the archive (size counts).
      const dataOffset = r.pos;

      if (type) {
        const xattrs = new Map(global.xattrs);
        for (const [k, v] of local.xattrs) xattrs.set(k, v);
        const uname = readBytes(block, FIELD.uname[0], FIELD.uname[1]).toString('utf8');
        const gname = readBytes(block, FIELD.gname[0], FIELD.gname[1]).toString('utf8');
        const hdr: TarHeader = {
          name,
          type,
          mode: Number(num(FIELD.mode, 'mode') & 0o7777n),
          uid: local.uid ?? global.uid ?? Number(num(FIELD.uid, 'uid')),
          gid: local.gid ?? global.gid ?? Number(num(FIELD.gid, 'gid')),
          uname: local.uname ?? global.uname ?? (uname || undefined),
          gname: local.gname ?? global.gname ?? (gname || undefined),
          size: type === 'file' ? size : 0,
          mtimeNs: local.mtimeNs ?? global.mtimeNs ?? num(FIELD.mtime, 'mtime') * 1_000_000_000n,
          linkname:
            local.linkpath ??
            longLink ??
            global.linkpath ??
            Buffer.from(readBytes(block, FIELD.linkname[0], FIELD.linkname[1])),
          devMajor: type === 'char' || type === 'block' ? Number(num(FIELD.devmajor, 'devmajor')) : 0,
          devMinor: type === 'char' || type === 'block' ? Number(num(FIELD.devminor, 'devminor')) : 0,
          xattrs,
        };
        let consumed = false;
        const member: TarMember = {
          header: hdr,
          offset: memberOffset,
          dataOffset,
          content: async function* () {
            if (consumed) throw new Error('tar member content read twice or after moving on');
            consumed = true;
            try {
              yield* r.stream(hdr.size);
            } catch (err) {
              if (err instanceof ShortRead) failAt(r.pos, 'truncated archive: unexpected end of data');
              throw err;
            }
          },
        };
        yield member;
        const left = dataOffset + size - r.pos;
        if (left < 0) failAt(dataOffset, 'content read past its end');
        if (left > 0) await r.skip(left);
        consumed = true;
      } else if (size > 0) {
        await r.skip(size);
      }
      await r.skip((BLOCK - (size % BLOCK)) % BLOCK);
    }
  } catch (err) {
    if (err instanceof ShortRead) failAt(r.pos, 'truncated archive: unexpected end of data');
    throw err;
  } finally {
    await r.close();
  }
}
