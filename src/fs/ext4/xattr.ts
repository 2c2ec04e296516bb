/**
 * Extended attributes: in the inode's spare 96 bytes first, the rest in one xattr block
 * (Documentation/filesystems/ext4/attributes.rst). POSIX ACLs arrive in the xattr API format and are
 * stored in ext4's compact on-disk format, as the kernel and e2fsprogs do.
 */
import { CloudletsError } from '../../errors.js';
import { crc32cRaw } from '../crc32c.js';
import { IN_INODE_XATTR_SIZE } from './inode.js';
import { BLOCK_SIZE } from './layout.js';

const MAGIC = 0xea020000;
const BLOCK_HEADER = 32;

/** Longest prefix first: the ACL names are whole names that map to an empty suffix. */
const PREFIXES: [string, number][] = [
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['user.', 1],
  ['trusted.', 4],
  ['security.', 6],
  ['system.', 7],
];

interface Attr {
  index: number;
  name: Buffer;
  value: Buffer;
  hash: number;
}

const pad4 = (n: number): number => (n + 3) & ~3;
const entrySize = (a: Attr): number => pad4(16 + a.name.length);
const valueSize = (a: Attr): number => pad4(a.value.length);

/** e2fsprogs' `ext2fs_ext_attr_hash_entry` (name bytes, then the value as padded little-endian words). */
function hashEntry(name: Buffer, value: Buffer): number {
  let hash = 0;
  for (const c of name) hash = ((hash << 5) ^ (hash >>> 27) ^ c) >>> 0;
  if (value.length > 0) {
    const padded = Buffer.alloc(pad4(value.length));
    value.copy(padded);
    for (let i = 0; i < padded.length; i += 4)
      hash = ((hash << 16) ^ (hash >>> 16) ^ padded.readUInt32LE(i)) >>> 0;
  }
  return hash;
}

/** posix_acl_xattr (version 2, 8-byte entries) → ext4_acl (version 1, 4-byte entries without an id). */
function aclToDisk(value: Buffer, where: string): Buffer {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== 2) {
    throw new CloudletsError('ESOURCE', 'malformed POSIX ACL xattr value', { where });
  }
  const parts: Buffer[] = [Buffer.from([1, 0, 0, 0])];
  for (let i = 4; i < value.length; i += 8) {
    const tag = value.readUInt16LE(i);
    const perm = value.readUInt16LE(i + 2);
    const withId = tag === 0x02 || tag === 0x08; // ACL_USER, ACL_GROUP
    const e = Buffer.alloc(withId ? 8 : 4);
    e.writeUInt16LE(tag, 0);
    e.writeUInt16LE(perm, 2);
    if (withId) e.writeUInt32LE(value.readUInt32LE(i + 4), 4);
    parts.push(e);
  }
  return Buffer.concat(parts);
}

function toAttrs(xattrs: ReadonlyMap<string, Buffer>, where: string): Attr[] {
  const attrs: Attr[] = [];
  for (const [full, raw] of xattrs) {
    const p = PREFIXES.find(([prefix]) => full.startsWith(prefix));
    const suffix = p ? full.slice(p[0].length) : '';
    if (!p || (p[1] !== 2 && p[1] !== 3 && suffix === '') || (p[1] <= 3 && p[1] >= 2 && suffix !== '')) {
      throw new CloudletsError(
        'ENOTSUP',
        `extended attribute ${JSON.stringify(full)} has no ext4 namespace`,
        {
          where,
          hint: 'ext4 stores user., trusted., security. and system. attributes',
        },
      );
    }
    const name = Buffer.from(suffix, 'utf8');
    if (name.length > 255)
      throw new CloudletsError('ENOTSUP', `extended attribute name too long: ${full}`, { where });
    const value = p[1] === 2 || p[1] === 3 ? aclToDisk(raw, where) : raw;
    attrs.push({ index: p[1], name, value, hash: hashEntry(name, value) });
  }
  // The kernel keeps block entries sorted by (index, name length, name); in-inode order is free. One order for both.
  attrs.sort((a, b) => a.index - b.index || a.name.length - b.name.length || Buffer.compare(a.name, b.name));
  return attrs;
}

/** Writes entries at `entriesAt` and values downward from `end`; value offsets are relative to `base`. */
function layOut(buf: Buffer, attrs: Attr[], entriesAt: number, end: number, base: number): void {
  let e = entriesAt;
  let v = end;
  for (const a of attrs) {
    let offs = 0;
    if (a.value.length > 0) {
      v -= valueSize(a);
      a.value.copy(buf, v);
      offs = v - base;
    }
    buf.writeUInt8(a.name.length, e);
    buf.writeUInt8(a.index, e + 1);
    buf.writeUInt16LE(offs, e + 2);
    buf.writeUInt32LE(0, e + 4);
    buf.writeUInt32LE(a.value.length, e + 8);
    buf.writeUInt32LE(a.hash, e + 12);
    a.name.copy(buf, e + 16);
    e += entrySize(a);
  }
  // The 4 zero bytes after the last entry end the list (the buffer is zero-filled).
}

export interface EncodedXattrs {
  /** The in-inode area (magic, entries, values), to copy at IN_INODE_XATTR_OFFSET; undefined when empty. */
  inInode: Buffer | undefined;
  /** An xattr block still lacking its checksum (see `sealXattrBlock`); undefined when all fit in the inode. */
  block: Buffer | undefined;
}

export function encodeXattrs(xattrs: ReadonlyMap<string, Buffer>, where: string): EncodedXattrs {
  if (xattrs.size === 0) return { inInode: undefined, block: undefined };
  const attrs = toAttrs(xattrs, where);
  const inodeRoom = IN_INODE_XATTR_SIZE - 4 - 4; // magic, end marker
  const inInode: Attr[] = [];
  const inBlock: Attr[] = [];
  let used = 0;
  for (const a of attrs) {
    const need = entrySize(a) + valueSize(a);
    if (inBlock.length === 0 && used + need <= inodeRoom) {
      inInode.push(a);
      used += need;
    } else inBlock.push(a);
  }
  let inodeArea: Buffer | undefined;
  if (inInode.length > 0) {
    inodeArea = Buffer.alloc(IN_INODE_XATTR_SIZE);
    inodeArea.writeUInt32LE(MAGIC, 0);
    layOut(inodeArea, inInode, 4, IN_INODE_XATTR_SIZE, 4);
  }
  let block: Buffer | undefined;
  if (inBlock.length > 0) {
    const need = inBlock.reduce((n, a) => n + entrySize(a) + valueSize(a), 0);
    if (BLOCK_HEADER + need + 4 > BLOCK_SIZE) {
      throw new CloudletsError(
        'ENOTSUP',
        `extended attributes take ${need} bytes; ext4 holds about 4000 per file`,
        {
          where,
        },
      );
    }
    block = Buffer.alloc(BLOCK_SIZE);
    block.writeUInt32LE(MAGIC, 0);
    block.writeUInt32LE(1, 4); // h_refcount
    block.writeUInt32LE(1, 8); // h_blocks
    let h = 0;
    for (const a of inBlock) h = ((h << 16) ^ (h >>> 16) ^ a.hash) >>> 0;
    block.writeUInt32LE(h, 12);
    layOut(block, inBlock, BLOCK_HEADER, BLOCK_SIZE, 0);
  }
  return { inInode: inodeArea, block };
}

/** h_checksum: crc32c(fs seed, block number as le64, block with the checksum zeroed). */
export function sealXattrBlock(block: Buffer, blockNr: number, fsSeed: number): void {
  const nr = Buffer.alloc(8);
  nr.writeUInt32LE(blockNr % 2 ** 32, 0);
  nr.writeUInt32LE(Math.floor(blockNr / 2 ** 32), 4);
  block.writeUInt32LE(0, 16);
  block.writeUInt32LE(crc32cRaw(crc32cRaw(fsSeed, nr), block), 16);
}
