// The metadata file: everything git and Mercurial drop, one sorted line per path, so it diffs and merges
// line by line. It is data only: parsed strictly, never executed.
//
// Format (`/.cloudlet/metadata`, UTF-8 text, tracked in the repository like any file):
//   # cloudlets metadata 1                         header; lines starting with # are comments
//   PATH TYPE UID:GID MODE [KEY=VALUE]...          one line per path, sorted by the raw bytes of PATH
// PATH   image-rooted (`/`, `/etc/hostname`). Bytes 0x00-0x20 (controls and space), 0x7f, `\` and every
//        byte outside valid UTF-8 are written `\xHH` (two lower-case hex digits); all else is literal UTF-8.
// TYPE   file | dir | symlink | hardlink | char | block | fifo | socket
// UID:GID numeric, never names. MODE: `mode & 07777` in octal, four digits (`4755`).
// Fields, in this order when present:
//   dev=MAJOR,MINOR        char and block devices
//   link=PATH              hardlink: the image path holding the content (escaped like PATH)
//   mtime=SECONDS.NANOS    only when committed with --mtimes
//   xattr.NAME=BASE64      one per extended attribute, sorted by NAME; NAME escaped like PATH plus `=`
//                          as `\x3d`; the value is standard base64 of the raw bytes
// Unknown fields, types, duplicate paths and merge-conflict markers are errors. The file does not list
// itself, volatile paths, or the repository (`/.git`, `/.hg`). Content of `file` and `symlink` entries
// lives in the VCS; every other type exists only here.
import { isUtf8 } from 'node:buffer';
import { CloudletsError } from '../errors.js';
import type { EntryType } from '../stream/entry.js';

/** Image path of the metadata file; tracked in the repository like any other file. */
export const METADATA_PATH = '/.cloudlet/metadata';
export const METADATA_HEADER = '# cloudlets metadata 1';

export interface MetaRecord {
  /** Image-rooted path bytes: `/`, `/etc/hostname`. */
  path: Buffer;
  type: EntryType;
  uid: number;
  gid: number;
  /** `mode & 0o7777`. */
  mode: number;
  devMajor?: number | undefined;
  devMinor?: number | undefined;
  /** `hardlink`: image path of the entry holding the content. */
  link?: Buffer | undefined;
  /** Only when captured with mtimes (opt-in). */
  mtimeNs?: bigint | undefined;
  /** name → raw value, written sorted by name. */
  xattrs: ReadonlyMap<string, Buffer>;
}

const TYPES: ReadonlySet<string> = new Set([
  'file',
  'dir',
  'symlink',
  'hardlink',
  'char',
  'block',
  'fifo',
  'socket',
]);
const HEX = '0123456789abcdef';

/** Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there starts none. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const c = b[i]!;
  let n: number;
  let min: number;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) [n, min] = [2, 0x80];
  else if (c >= 0xe0 && c <= 0xef) [n, min] = [3, 0x800];
  else if (c >= 0xf0 && c <= 0xf4) [n, min] = [4, 0x10000];
  else return 0;
  if (i + n > b.length) return 0;
  let cp = c & (0xff >> (n + 1));
  for (let k = 1; k < n; k++) {
    const d = b[i + k]!;
    if ((d & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (d & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

/** 1 for a printable ASCII byte that `escapeBytes` keeps as it is (whatever `extra` adds aside). */
const PLAIN_ASCII = new Uint8Array(256).map((_, c) => (c > 0x20 && c < 0x7f && c !== 0x5c ? 1 : 0));

function mustEscape(c: number, extra: string): boolean {
  return (
    c <= 0x20 || c === 0x7f || c === 0x5c || (extra.length > 0 && extra.includes(String.fromCharCode(c)))
  );
}

/**
 * Escapes bytes for one field of a line: control bytes, space, DEL, backslash, the bytes in `extra`, and
 * every byte not part of valid UTF-8 become `\xHH` (lower-case hex). Everything else is kept as is, so
 * ordinary names stay readable.
 */
export function escapeBytes(b: Buffer, extra = ''): string {
  // Most fields are plain ASCII with nothing to escape: one pass over a table says so.
  if (extra === '') {
    let i = 0;
    while (i < b.length && PLAIN_ASCII[b[i]!] === 1) i++;
    if (i === b.length) return b.toString('latin1');
  }
  let plain = isUtf8(b);
  if (plain) {
    for (let i = 0; i < b.length; i++) {
      if (mustEscape(b[i]!, extra)) {
        plain = false;
        break;
      }
    }
  }
  if (plain) return b.toString('utf8');
  let out = '';
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const n = utf8SequenceLength(b, i);
    if (n === 0 || (n === 1 && mustEscape(c, extra))) {
      out += `\\x${HEX[c >> 4]}${HEX[c & 15]}`;
      i += 1;
    } else {
      out += b.subarray(i, i + n).toString('utf8');
      i += n;
    }
  }
  return out;
}

/** Reverses `escapeBytes`. Throws on a malformed escape, a raw space or control byte. */
export function unescapeBytes(s: string): Buffer {
  if (!s.includes('\\')) return Buffer.from(s, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = s.indexOf('\\'); i !== -1; i = s.indexOf('\\', start)) {
    parts.push(Buffer.from(s.slice(start, i), 'utf8'));
    const hex = s.slice(i + 2, i + 4);
    if (s[i + 1] !== 'x' || !/^[0-9a-fA-F]{2}$/.test(hex))
      throw new Error(`bad escape "${s.slice(i, i + 4)}"`);
    parts.push(Buffer.from([Number.parseInt(hex, 16)]));
    start = i + 4;
  }
  parts.push(Buffer.from(s.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

export function formatMode(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

export function formatMtime(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const frac = ns % 1_000_000_000n;
  return `${sec}.${frac.toString().padStart(9, '0')}`;
}

/** Modes repeat across a tree: each is formatted once. */
const MODE_TEXT = new Map<number, string>();

export function formatRecord(r: MetaRecord): string {
  let mode = MODE_TEXT.get(r.mode);
  if (mode === undefined) {
    mode = formatMode(r.mode);
    if (MODE_TEXT.size < 4096) MODE_TEXT.set(r.mode, mode);
  }
  let line = `${escapeBytes(r.path)} ${r.type} ${r.uid}:${r.gid} ${mode}`;
  if (r.type === 'char' || r.type === 'block') line += ` dev=${r.devMajor ?? 0},${r.devMinor ?? 0}`;
  if (r.type === 'hardlink' && r.link) line += ` link=${escapeBytes(r.link)}`;
  if (r.mtimeNs !== undefined) line += ` mtime=${formatMtime(r.mtimeNs)}`;
  if (r.xattrs.size === 0) return line;
  for (const name of [...r.xattrs.keys()].sort()) {
    line += ` xattr.${escapeBytes(Buffer.from(name, 'utf8'), '=')}=${r.xattrs.get(name)!.toString('base64')}`;
  }
  return line;
}

/** The whole file: header, then records sorted by the bytes of their paths. */
export function formatMetadata(records: readonly MetaRecord[]): string {
  return formatMetadataLines(records).text;
}

function isSortedByPath(records: readonly MetaRecord[]): boolean {
  for (let i = 1; i < records.length; i++)
    if (records[i - 1]!.path.compare(records[i]!.path) > 0) return false;
  return true;
}

/** `formatMetadata`, with the sorted records and the line of each (same index). */
export function formatMetadataLines(records: readonly MetaRecord[]): {
  text: string;
  sorted: MetaRecord[];
  lines: string[];
} {
  // A capture comes sorted already (the walk's order): checked in one pass instead of sorted again.
  const sorted = isSortedByPath(records)
    ? [...records]
    : [...records].sort((a, b) => Buffer.compare(a.path, b.path));
  const lines = sorted.map(formatRecord);
  let text = `${METADATA_HEADER}\n`;
  for (const l of lines) text += `${l}\n`;
  return { text, sorted, lines };
}

function parseRecord(line: string): MetaRecord {
  const fields = line.split(' ');
  if (fields.length < 4) throw new Error('expected at least "PATH TYPE UID:GID MODE"');
  const [pathField, type, owner, modeField] = fields as [string, string, string, string];
  const path = unescapeBytes(pathField);
  if (!TYPES.has(type)) throw new Error(`unknown type "${type}"`);
  const om = /^(\d{1,10}):(\d{1,10})$/.exec(owner);
  if (!om) throw new Error(`bad owner "${owner}", expected UID:GID`);
  if (!/^[0-7]{1,4}$/.test(modeField)) throw new Error(`bad mode "${modeField}", expected octal up to 7777`);
  const xattrs = new Map<string, Buffer>();
  const rec: MetaRecord = {
    path,
    type: type as EntryType,
    uid: Number(om[1]),
    gid: Number(om[2]),
    mode: Number.parseInt(modeField, 8),
    xattrs,
  };
  for (const field of fields.slice(4)) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw new Error(`bad field "${field}", expected KEY=VALUE`);
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (key === 'dev') {
      const dm = /^(\d{1,10}),(\d{1,10})$/.exec(value);
      if (!dm) throw new Error(`bad device numbers "${value}"`);
      rec.devMajor = Number(dm[1]);
      rec.devMinor = Number(dm[2]);
    } else if (key === 'link') {
      rec.link = unescapeBytes(value);
    } else if (key === 'mtime') {
      const mm = /^(\d{1,20})\.(\d{9})$/.exec(value);
      if (!mm) throw new Error(`bad mtime "${value}"`);
      rec.mtimeNs = BigInt(mm[1]!) * 1_000_000_000n + BigInt(mm[2]!);
    } else if (key.startsWith('xattr.')) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new Error(`bad base64 value of ${key}`);
      xattrs.set(unescapeBytes(key.slice(6)).toString('utf8'), Buffer.from(value, 'base64'));
    } else {
      throw new Error(`unknown field "${key}"`);
    }
  }
  if ((type === 'char' || type === 'block') && rec.devMajor === undefined)
    throw new Error('device without dev=');
  if (type === 'hardlink' && !rec.link) throw new Error('hardlink without link=');
  return rec;
}

export interface ParseMetadataOptions {
  /**
   * Records parsed before, by their exact line (another revision's file): an identical line is the
   * same record, so it is taken as is instead of parsed again. The records are shared, not copied.
   */
  reuse?: ReadonlyMap<string, MetaRecord>;
  /** Filled with each record by its exact line, to pass as `reuse` later. */
  byLine?: Map<string, MetaRecord>;
  /** Filled with the records taken from `reuse`. */
  reused?: Set<MetaRecord>;
}

/**
 * Parses a metadata file. `where` names it in errors (`.cloudlet/metadata at abc123`). Merge conflict
 * markers, unknown fields and duplicate paths are errors, never guessed around.
 */
export function parseMetadata(
  text: string,
  where = METADATA_PATH,
  opts: ParseMetadataOptions = {},
): MetaRecord[] {
  const lines = text.split('\n');
  const out: MetaRecord[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '' || line.startsWith('#')) continue;
    // Every valid line starts with `/`; anything else is checked for conflict markers first.
    if (line.charCodeAt(0) !== 0x2f && /^(<<<<<<<|=======|>>>>>>>|\|\|\|\|\|\|\|)/.test(line)) {
      throw new CloudletsError('ESOURCE', 'merge conflict markers in the metadata file', {
        where: `${where}:${i + 1}`,
        hint: 'keep one line per path, then commit again',
      });
    }
    let rec = opts.reuse?.get(line);
    if (rec) {
      opts.reused?.add(rec);
    } else {
      try {
        rec = parseRecord(line);
      } catch (err) {
        throw new CloudletsError('ESOURCE', `invalid metadata line: ${(err as Error).message}`, {
          where: `${where}:${i + 1}`,
        });
      }
    }
    opts.byLine?.set(line, rec);
    const key = rec.path.toString('latin1');
    if (seen.has(key))
      throw new CloudletsError('ESOURCE', 'the same path appears twice', { where: `${where}:${i + 1}` });
    seen.add(key);
    out.push(rec);
  }
  return out.sort((a, b) => Buffer.compare(a.path, b.path));
}

/** Human-readable path for messages: the escaped form, so newlines cannot forge output lines. */
export function showPath(p: Buffer): string {
  return escapeBytes(p);
}

export interface MetadataChange {
  path: string;
  kind: 'added' | 'removed' | 'type' | 'mode' | 'owner' | 'dev' | 'link' | 'mtime' | 'xattr';
  /** One line for people: `mode 0755 -> 4755 /usr/bin/ping`. */
  text: string;
  from?: string;
  to?: string;
  xattr?: string;
  /** `added` and `removed`: the entry's type. */
  type?: EntryType;
}

/** What changed between two metadata snapshots, one readable line per difference, sorted by path. */
export function diffMetadata(before: readonly MetaRecord[], after: readonly MetaRecord[]): MetadataChange[] {
  const key = (r: MetaRecord) => r.path.toString('latin1');
  const old = new Map(before.map((r) => [key(r), r]));
  const changes: MetadataChange[] = [];
  const summary = (r: MetaRecord) => `${r.type} ${formatMode(r.mode)} ${r.uid}:${r.gid}`;
  for (const n of after) {
    const p = showPath(n.path);
    const o = old.get(key(n));
    old.delete(key(n));
    if (!o) {
      changes.push({
        path: p,
        kind: 'added',
        type: n.type,
        text: `added ${summary(n)} ${p}`,
        to: summary(n),
      });
      continue;
    }
    const push = (kind: MetadataChange['kind'], from: string, to: string) => {
      if (from !== to) changes.push({ path: p, kind, text: `${kind} ${from} -> ${to} ${p}`, from, to });
    };
    push('type', o.type, n.type);
    push('mode', formatMode(o.mode), formatMode(n.mode));
    push('owner', `${o.uid}:${o.gid}`, `${n.uid}:${n.gid}`);
    push('dev', `${o.devMajor ?? '-'},${o.devMinor ?? '-'}`, `${n.devMajor ?? '-'},${n.devMinor ?? '-'}`);
    push('link', o.link ? showPath(o.link) : '-', n.link ? showPath(n.link) : '-');
    push(
      'mtime',
      o.mtimeNs === undefined ? '-' : formatMtime(o.mtimeNs),
      n.mtimeNs === undefined ? '-' : formatMtime(n.mtimeNs),
    );
    const names = [...new Set([...o.xattrs.keys(), ...n.xattrs.keys()])].sort();
    for (const name of names) {
      const a = o.xattrs.get(name);
      const b = n.xattrs.get(name);
      const state = !a ? 'added' : !b ? 'removed' : a.equals(b) ? '' : 'changed';
      if (state) changes.push({ path: p, kind: 'xattr', xattr: name, text: `xattr ${name} ${state} ${p}` });
    }
  }
  for (const o of old.values()) {
    const p = showPath(o.path);
    changes.push({
      path: p,
      kind: 'removed',
      type: o.type,
      text: `removed ${summary(o)} ${p}`,
      from: summary(o),
    });
  }
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface MetadataMerge {
  records: MetaRecord[];
  /** Paths both sides changed differently: the merge keeps ours and lists them. */
  conflicts: Buffer[];
}

/**
 * Three-way merge, one path at a time: a side that left a path as in the base takes the other side's
 * version. Git's line merge would call two changes on neighbouring lines a conflict; here they are not.
 */
export function mergeMetadata(
  base: readonly MetaRecord[],
  ours: readonly MetaRecord[],
  theirs: readonly MetaRecord[],
): MetadataMerge {
  const index = (rs: readonly MetaRecord[]) =>
    new Map(rs.map((r) => [r.path.toString('latin1'), formatRecord(r)]));
  const [b, o, t] = [index(base), index(ours), index(theirs)];
  const all = new Map<string, MetaRecord>();
  for (const r of [...theirs, ...ours]) all.set(r.path.toString('latin1'), r);
  const keyed = new Map([...ours, ...theirs].map((r) => [formatRecord(r), r]));
  const records: MetaRecord[] = [];
  const conflicts: Buffer[] = [];
  const paths = new Set([...b.keys(), ...o.keys(), ...t.keys()]);
  for (const p of paths) {
    const [bl, ol, tl] = [b.get(p), o.get(p), t.get(p)];
    let pick: string | undefined;
    if (ol === tl) pick = ol;
    else if (ol === bl) pick = tl;
    else if (tl === bl) pick = ol;
    else {
      conflicts.push(Buffer.from(p, 'latin1'));
      pick = ol ?? tl;
    }
    if (pick !== undefined) records.push(keyed.get(pick) ?? all.get(p)!);
  }
  records.sort((x, y) => Buffer.compare(x.path, y.path));
  conflicts.sort(Buffer.compare);
  return { records, conflicts };
}

/**
 * `diffMetadata(parseMetadata(beforeText, where), after)` without parsing what did not change: a line
 * the new file holds too is the same record on both sides, so it cannot differ. `after` and `afterLines`
 * come from `formatMetadataLines`. A bad `beforeText` fails as `parseMetadata` fails (line numbers kept).
 */
export function diffMetadataText(
  beforeText: string,
  where: string,
  after: readonly MetaRecord[],
  afterLines: readonly string[],
): MetadataChange[] {
  const next = new Set(afterLines);
  const lines = beforeText.split('\n');
  const keptKeys = new Set<string>();
  const kept = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (l === '' || l.startsWith('#') || !next.has(l) || kept.has(l)) continue;
    kept.add(l);
    keptKeys.add(l.slice(0, l.indexOf(' ')));
    lines[i] = ''; // blank lines are skipped, so the numbers in errors stay right
  }
  const before = parseMetadata(lines.join('\n'), where);
  // What parseMetadata would have said of the whole file: every path once.
  for (const r of before) {
    if (keptKeys.has(escapeBytes(r.path))) {
      const at = lines.findIndex((l) => {
        if (l === '' || l.startsWith('#')) return false;
        try {
          return unescapeBytes(l.slice(0, l.indexOf(' '))).equals(r.path);
        } catch {
          return false;
        }
      });
      throw new CloudletsError('ESOURCE', 'the same path appears twice', { where: `${where}:${at + 1}` });
    }
  }
  return diffMetadata(
    before,
    after.filter((_, i) => !kept.has(afterLines[i]!)),
  );
}
