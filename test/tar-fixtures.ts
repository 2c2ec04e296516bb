// Entry fixtures and helpers shared by the tar writer, reader and source tests.
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import type { Entry } from '../src/stream/entry.js';
import { type WriteTarOptions, writeTar } from '../src/stream/sinks/tar.js';

export const isRoot = process.getuid?.() === 0;
export const T0 = 1_600_000_000_000_000_000n;
/** security.capability for cap_net_bind_service (VFS_CAP_REVISION_2): binary, NULs inside. */
export const CAPABILITY = Buffer.from([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
export const BAD_NAME = Buffer.concat([
  Buffer.from('/a/bad'),
  Buffer.from([0xff, 0xfe]),
  Buffer.from('name'),
]);
/** A directory with a 98-byte name, and a file in it: 187 bytes, fits the ustar prefix/name split. */
export const LONG_DIR = `/a/${'sub-directory-'.repeat(7)}`;
export const LONG_NAME = `${LONG_DIR}/${'file-name-'.repeat(8)}end`;
/** A component longer than the name field: needs a pax path. */
export const LONG_COMPONENT = `/a/${'x'.repeat(150)}`;

export function entry(p: string | Buffer, type: Entry['type'], extra: Partial<Entry> = {}): Entry {
  return {
    path: typeof p === 'string' ? Buffer.from(p) : p,
    type,
    mode: type === 'dir' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    mtimeNs: T0,
    size: 0,
    xattrs: new Map(),
    ...extra,
  };
}

export function file(p: string | Buffer, body: string | Buffer, extra: Partial<Entry> = {}): Entry {
  const b = Buffer.from(body);
  return entry(p, 'file', {
    size: b.length,
    content: async function* () {
      // In pieces, as a real source would give them.
      for (let i = 0; i < b.length; i += 7000) yield b.subarray(i, i + 7000);
    },
    ...extra,
  });
}

/** Every case the writer must get right, already in path order. */
export function sampleEntries(): Entry[] {
  return [
    entry('/', 'dir'),
    entry('/a', 'dir', { mode: 0o1777 }),
    file(BAD_NAME, 'x'),
    file(Buffer.concat([BAD_NAME, Buffer.from(`-long-${'y'.repeat(100)}`)]), 'long binary name'),
    file('/a/caf\u00e9', 'utf8 name'),
    file('/a/cap', 'cap', {
      xattrs: new Map([
        ['security.capability', CAPABILITY],
        ['user.bin', Buffer.from([0, 1, 2, 10, 0x3d])],
      ]),
      uid: 4294967294,
      gid: 3000000,
      mode: 0o4755,
    }),
    file('/a/frac', 'fractional mtime', { mtimeNs: T0 + 123456789n }),
    file('/a/nl\nname', 'nl'),
    file('/a/sgid', 'sgid', { mode: 0o2755, uid: 1000, gid: 1000, uname: 'alice', gname: 'staff' }),
    entry(LONG_DIR, 'dir'),
    file(LONG_NAME, 'long'),
    file(LONG_COMPONENT, 'long component'),
    entry('/b', 'dir'),
    file('/b/big', Buffer.alloc(3 << 20, 0x61)),
    entry('/b/hl', 'hardlink', {
      linkTarget: Buffer.from('/a/cap'),
      mode: 0o4755,
      uid: 4294967294,
      gid: 3000000,
    }),
    entry('/b/sl', 'symlink', { linkTarget: Buffer.from('../a/caf\u00e9'), mode: 0o777 }),
    entry('/dev', 'dir'),
    entry('/dev/fifo', 'fifo', { mode: 0o600 }),
    entry('/dev/null', 'char', { devMajor: 1, devMinor: 3, mode: 0o666 }),
    entry('/dev/sda', 'block', { devMajor: 8, devMinor: 0, mode: 0o660, gid: 6 }),
    entry('/empty', 'dir', { mode: 0o2755 }),
    entry('/run.sock', 'socket'),
  ];
}

export async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  yield* items;
}

/** A Writable that collects what it is given. */
export function collector(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return { stream, bytes: () => Buffer.concat(chunks) };
}

export async function tarBytes(entries: Entry[], opts: WriteTarOptions = {}): Promise<Buffer> {
  const c = collector();
  await writeTar(fromArray(entries), c.stream, opts);
  return c.bytes();
}

export function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    input: opts.input,
    env: { ...process.env, LC_ALL: 'C' },
    maxBuffer: 1 << 28,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** A hand-made member with any name (e.g. `../x`, `etc/x`), for tests of what other tools may write. */
export function rawMember(
  name: string,
  type: Entry['type'],
  opts: { body?: string; linkname?: string; encode: (e: Entry) => Buffer; mode?: number },
): Buffer {
  const body = Buffer.from(opts.body ?? '');
  const e = entry('/placeholder', type, {
    size: type === 'file' ? body.length : 0,
    mode: opts.mode ?? (type === 'dir' ? 0o755 : 0o644),
    linkTarget: opts.linkname === undefined ? undefined : Buffer.from(opts.linkname),
  });
  const header = opts.encode(e);
  header.fill(0, 0, 100);
  header.write(name, 0, 'latin1');
  if (opts.linkname !== undefined) {
    header.fill(0, 157, 257);
    header.write(opts.linkname, 157, 'latin1');
  }
  // checksum over the patched block
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([header, body, pad]);
}

export function endOfArchive(): Buffer {
  return Buffer.alloc(1024);
}
