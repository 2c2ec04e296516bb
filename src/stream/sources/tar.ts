/**
 * A tar archive (plain, gzip or zstd, recognised by content) as an image source. Reading writes nothing
 * to disk.
 *
 * An archive's member order is arbitrary (GNU tar stores readdir order) but entries must come out in
 * path order, so:
 * 1. A first pass reads every header and keeps metadata only: type, owner, mode, size and where the
 *    content sits in the decompressed stream. For a compressed archive, the content of small files
 *    (≤ 64 KiB each, 16 MiB in all) is kept too: it serves `readFile` (manifest, templates) at once and
 *    most out-of-order content later.
 * 2. `entries()` yields the sorted index. A plain archive's content is read by offset from the file.
 *    A compressed archive whose content is already in path order (ours is) is decompressed once more
 *    and streamed. Otherwise it is read in batches: one more decompression per batch, each keeping the
 *    content of the next files in path order, 64 MiB in all (a file above 16 MiB is streamed on its
 *    own, one decompression). Reading a 300 MB `tar -czf` of a tree in readdir order thus costs about
 *    six decompressions; memory stays bounded by the budget, not the archive.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { CloudletsError } from '../../errors.js';
import { type Compression, decompressedChunks, sniffCompression } from '../../tar/decompress.js';
import { readTar } from '../../tar/reader.js';
import type { Entry, ImageSource } from '../entry.js';
import { resolveImagePath } from './resolve.js';

/** What the first pass keeps of a member: its entry's metadata, and where its content is. */
interface Indexed extends Omit<Entry, 'content' | 'openContentSync' | 'targetSize' | 'xattrs'> {
  xattrs: Map<string, Buffer>;
  /** Offset of the content in the decompressed stream (files), -1 otherwise. */
  dataOffset: number;
  /** The content, when held in memory. */
  data?: Buffer | undefined;
  /** The member name as stored, for messages. */
  member: string;
}

export interface TarSourceOptions {
  /** Per-file and total limits of small-file content held from the first pass (compressed only). */
  smallFileMax?: number;
  smallFilesBudget?: number;
  /**
   * A compressed archive out of path order is read in batches: each batch is one more decompression,
   * keeping the content of the next files (in path order) up to `batchBudget` bytes in all (default
   * 64 MiB); a file above `batchFileMax` (default a quarter of that) is streamed on its own instead.
   */
  batchBudget?: number;
  batchFileMax?: number;
}

const READ_CHUNK = 1 << 20;
const SLASH = 0x2f;

/** `./etc/x`, `etc/x`, `/etc/x`, `etc//x/` → `/etc/x`; `.` and `./` → `/`; `..` is refused. */
export function normaliseMemberName(name: Buffer, where: string): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i <= name.length; i++) {
    if (i === name.length || name[i] === SLASH) {
      const part = name.subarray(start, i);
      start = i + 1;
      if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue;
      if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) {
        throw new CloudletsError(
          'ESOURCE',
          `member ${JSON.stringify(name.toString('utf8'))} has a '..' component`,
          {
            where,
            hint: 'an archive member may not point outside the image',
          },
        );
      }
      parts.push(part);
    }
  }
  if (parts.length === 0) return Buffer.from('/');
  const out: Buffer[] = [];
  for (const p of parts) out.push(Buffer.from('/'), p);
  return Buffer.concat(out);
}

const keyOf = (path: Buffer) => path.toString('latin1');

function parentOf(path: Buffer): Buffer | undefined {
  if (path.length <= 1) return undefined;
  const i = path.lastIndexOf(SLASH);
  return i <= 0 ? Buffer.from('/') : path.subarray(0, i);
}

async function readAll(chunks: AsyncIterable<Buffer>, size: number): Promise<Buffer> {
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for await (const c of chunks) at += c.copy(out, at);
  return out.subarray(0, at);
}

/** Opens `file` as an image source; reads all headers once (see the module comment). */
export async function openTarSource(file: string, opts: TarSourceOptions = {}): Promise<ImageSource> {
  const description = `archive ${file}`;
  const compression = await sniffCompression(file);
  const smallMax = opts.smallFileMax ?? 64 << 10;
  let smallBudget = opts.smallFilesBudget ?? 16 << 20;
  const index = new Map<string, Indexed>();

  for await (const m of readTar(decompressedChunks(file, compression), { where: file })) {
    const h = m.header;
    const path = normaliseMemberName(h.name, file);
    const member = h.name.toString('utf8');
    const entry: Indexed = {
      path,
      type: h.type,
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
      uname: h.uname,
      gname: h.gname,
      mtimeNs: h.mtimeNs,
      size: h.size,
      devMajor: h.type === 'char' || h.type === 'block' ? h.devMajor : undefined,
      devMinor: h.type === 'char' || h.type === 'block' ? h.devMinor : undefined,
      xattrs: h.xattrs,
      dataOffset: h.type === 'file' ? m.dataOffset : -1,
      member,
    };
    if (h.type === 'symlink') entry.linkTarget = h.linkname;
    if (h.type === 'hardlink') entry.linkTarget = normaliseMemberName(h.linkname, file);
    if (compression !== 'none' && h.type === 'file' && h.size <= smallMax && h.size <= smallBudget) {
      entry.data = await readAll(m.content(), h.size);
      smallBudget -= h.size;
    }
    const previous = index.get(keyOf(path));
    // Tar semantics: a later member of the same name replaces the earlier one.
    if (previous?.data) smallBudget += previous.data.length;
    index.set(keyOf(path), entry);
  }

  resolveHardlinks(index, file);
  addMissingDirectories(index, file);
  const sorted = [...index.values()].sort((a, b) => Buffer.compare(a.path, b.path));

  const lstat = (p: Buffer) => index.get(keyOf(p));
  let handle: FileHandle | undefined;
  const fileHandle = async () => {
    handle ??= await open(file, 'r');
    return handle;
  };

  /** Content of a plain archive's member, read by offset. */
  async function* plainRange(offset: number, size: number): AsyncGenerator<Buffer> {
    const fh = await fileHandle();
    let left = size;
    let at = offset;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(left, READ_CHUNK));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at);
      if (bytesRead === 0) {
        throw new CloudletsError('ESOURCE', `the archive ended inside a member's content (byte ${at})`, {
          where: file,
        });
      }
      at += bytesRead;
      left -= bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  }

  async function contentOf(e: Indexed): Promise<Buffer> {
    if (e.data) return e.data;
    if (compression === 'none') return readAll(plainRange(e.dataOffset, e.size), e.size);
    const cursor = new Cursor(file, compression);
    try {
      return await readAll(cursor.range(e.dataOffset, e.size), e.size);
    } finally {
      await cursor.close();
    }
  }

  return {
    description,
    entries: () => streamEntries({ sorted, file, compression, plainRange, opts, lookup: lstat }),
    async readFile(imagePath: string): Promise<Buffer | undefined> {
      const found = await resolveImagePath({ lstat }, imagePath);
      if (!found) return undefined;
      let e = index.get(keyOf(found.path))!;
      if (e.type === 'hardlink') e = index.get(keyOf(e.linkTarget!)) ?? e;
      if (e.type !== 'file') {
        throw new CloudletsError('EPATH', `not a regular file (${e.type})`, { where: imagePath });
      }
      return contentOf(e);
    },
    async close() {
      await handle?.close();
      handle = undefined;
    },
  };
}

/**
 * Within each group of hardlinked members, the first in path order becomes the entry with the content
 * and the others link to it, so a sink writing in path order never links to a name not yet written.
 */
function resolveHardlinks(index: Map<string, Indexed>, file: string): void {
  const groups = new Map<string, Indexed[]>();
  for (const e of index.values()) {
    if (e.type !== 'hardlink') continue;
    let target = index.get(keyOf(e.linkTarget!));
    for (let hops = 0; target?.type === 'hardlink' && hops < 64; hops++) {
      target = index.get(keyOf(target.linkTarget!));
    }
    if (!target || target.type === 'hardlink' || target.type === 'dir') {
      throw new CloudletsError(
        'ESOURCE',
        `member ${JSON.stringify(e.member)} is a hardlink to ${JSON.stringify(e.linkTarget!.toString('utf8'))}, ${target ? 'a directory or a loop' : 'which is not in the archive'}`,
        { where: file },
      );
    }
    const k = keyOf(target.path);
    const g = groups.get(k) ?? [target];
    g.push(e);
    groups.set(k, g);
  }
  for (const group of groups.values()) {
    group.sort((a, b) => Buffer.compare(a.path, b.path));
    const primary = group.find((e) => e.type !== 'hardlink')!;
    const first = group[0]!;
    if (first !== primary) {
      index.set(keyOf(first.path), { ...primary, path: first.path, member: first.member });
    }
    for (const e of group.slice(1)) {
      // A link keeps the metadata of its own header; only what it points at changes.
      index.set(keyOf(e.path), {
        ...e,
        type: 'hardlink',
        size: 0,
        linkTarget: first.path,
        dataOffset: -1,
        data: undefined,
        devMajor: undefined,
        devMinor: undefined,
      });
    }
  }
}

/** Parent directories the archive does not list (and the root) appear as 0755 root:root. */
function addMissingDirectories(index: Map<string, Indexed>, file: string): void {
  const synth = (path: Buffer): Indexed => ({
    path,
    type: 'dir',
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtimeNs: 0n,
    size: 0,
    xattrs: new Map(),
    dataOffset: -1,
    member: '(implied)',
  });
  if (!index.has('/')) index.set('/', synth(Buffer.from('/')));
  for (const e of [...index.values()]) {
    for (let p = parentOf(e.path); p; p = parentOf(p)) {
      const parent = index.get(keyOf(p));
      if (parent) {
        if (parent.type !== 'dir') {
          throw new CloudletsError(
            'ESOURCE',
            `member ${JSON.stringify(e.member)} is inside ${JSON.stringify(p.toString('utf8'))}, which is a ${parent.type}, not a directory`,
            { where: file },
          );
        }
        break;
      }
      index.set(keyOf(p), synth(Buffer.from(p)));
    }
  }
  const root = index.get('/')!;
  if (root.type !== 'dir') {
    throw new CloudletsError('ESOURCE', 'the archive root is not a directory', { where: file });
  }
}

/** A forward-only reader over the decompressed stream that can start again from the beginning. */
class Cursor {
  private gen: AsyncGenerator<Buffer> | undefined;
  private rest: Buffer = Buffer.alloc(0);
  /** Offset of `rest[0]` in the decompressed stream. */
  pos = 0;

  constructor(
    private readonly file: string,
    private readonly compression: Compression,
  ) {}

  private async next(): Promise<Buffer> {
    if (this.rest.length > 0) {
      const r = this.rest;
      this.rest = Buffer.alloc(0);
      return r;
    }
    this.gen ??= decompressedChunks(this.file, this.compression);
    const r = await this.gen.next();
    if (r.done) {
      throw new CloudletsError('ESOURCE', `the archive ended early (byte ${this.pos})`, { where: this.file });
    }
    return r.value;
  }

  async *range(offset: number, size: number): AsyncGenerator<Buffer> {
    if (offset < this.pos) {
      await this.close();
      this.pos = 0;
    }
    while (this.pos < offset) {
      const c = await this.next();
      const k = Math.min(c.length, offset - this.pos);
      this.pos += k;
      if (k < c.length) this.rest = c.subarray(k);
    }
    let left = size;
    while (left > 0) {
      const c = await this.next();
      const k = Math.min(c.length, left);
      this.pos += k;
      left -= k;
      if (k < c.length) this.rest = c.subarray(k);
      yield c.subarray(0, k);
    }
  }

  async close(): Promise<void> {
    this.rest = Buffer.alloc(0);
    await this.gen?.return(undefined);
    this.gen = undefined;
  }
}

interface StreamArgs {
  sorted: Indexed[];
  file: string;
  compression: Compression;
  plainRange: (offset: number, size: number) => AsyncGenerator<Buffer>;
  opts: TarSourceOptions;
  lookup: (path: Buffer) => Indexed | undefined;
}

async function* streamEntries(args: StreamArgs): AsyncGenerator<Entry> {
  const { sorted, file, compression, plainRange, opts, lookup } = args;
  const cursor = compression === 'none' ? undefined : new Cursor(file, compression);
  const batchBudget = opts.batchBudget ?? 64 << 20;
  const batchFileMax = opts.batchFileMax ?? batchBudget / 4;
  // Content still in the compressed stream, in path order.
  const streamed = sorted.filter((e) => e.type === 'file' && e.size > 0 && !e.data);
  const inOrder = streamed.every((e, i) => i === 0 || e.dataOffset > streamed[i - 1]!.dataOffset);
  const loaded = new Map<Indexed, Buffer>();
  let next = 0; // index in `streamed` of the first file not yet loaded or passed

  /**
   * Out of order: decompress once more and keep, in memory, the content of the next files in path
   * order up to the batch budget (files above `batchFileMax` are streamed on their own instead).
   */
  async function loadBatch(): Promise<void> {
    const batch: Indexed[] = [];
    let bytes = 0;
    for (let i = next; i < streamed.length; i++) {
      const f = streamed[i]!;
      if (f.size > batchFileMax) continue;
      if (bytes + f.size > batchBudget && batch.length > 0) break;
      batch.push(f);
      bytes += f.size;
    }
    batch.sort((a, b) => a.dataOffset - b.dataOffset);
    for (const f of batch) loaded.set(f, await readAll(cursor!.range(f.dataOffset, f.size), f.size));
  }

  try {
    for (const e of sorted) {
      let content: (() => AsyncIterable<Buffer>) | undefined;
      if (e.type === 'file' && e.size > 0) {
        let held = e.data;
        if (!held && cursor) {
          while (streamed[next] !== e) next++;
          next++;
          if (!inOrder && e.size <= batchFileMax) {
            if (!loaded.has(e)) await loadBatch();
            held = loaded.get(e);
            loaded.delete(e);
          }
        }
        if (held) {
          const data = held;
          content = async function* () {
            yield data;
          };
        } else if (!cursor) content = () => plainRange(e.dataOffset, e.size);
        else content = () => cursor.range(e.dataOffset, e.size);
      }
      // A hardlink can still give its file's content (Entry.targetSize), so a filter that leaves out the
      // first link can turn this one into the file. Read only if asked: for a compressed archive that
      // is one more decompression up to the content.
      let targetSize: number | undefined;
      const primary = e.type === 'hardlink' ? lookup(e.linkTarget!) : undefined;
      if (primary?.type === 'file') {
        targetSize = primary.size;
        const data = primary.data;
        content = data
          ? async function* () {
              yield data;
            }
          : primary.size === 0
            ? async function* () {}
            : !cursor
              ? () => plainRange(primary.dataOffset, primary.size)
              : () => cursor.range(primary.dataOffset, primary.size);
      }
      yield {
        path: e.path,
        type: e.type,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        uname: e.uname,
        gname: e.gname,
        mtimeNs: e.mtimeNs,
        size: e.type === 'file' ? e.size : 0,
        linkTarget: e.linkTarget,
        devMajor: e.devMajor,
        devMinor: e.devMinor,
        xattrs: e.xattrs,
        content,
        targetSize,
      };
    }
  } finally {
    await cursor?.close();
  }
}
