// The few tar headers the packaged outputs need: plain ustar members (an OVA) and GNU "oldgnu" sparse
// members (the GCE archive). Written here rather than taken from src/tar (the image archive writer, pax)
// because OVA readers expect plain ustar and GCE's importer expects GNU's old sparse format, neither of
// which a pax writer produces; each is a few dozen lines.

export const BLOCK = 512;
/** GNU tar pads an archive to a whole record of 20 blocks; we do the same so the bytes match its output. */
export const RECORD = 20 * BLOCK;

/** A sparse region of a file: `length` bytes of data at `offset`. */
export interface Region {
  offset: number;
  length: number;
}

export interface UstarMember {
  name: string;
  size: number;
  mtime: number;
  mode?: number;
}

/** A ustar header for a regular file owned by root (uid/gid 0, no names): what OVA readers expect. */
export function ustarHeader(m: UstarMember): Buffer {
  const h = baseHeader(m.name, m.mode ?? 0o644, m.size, m.mtime, '0');
  h.write('ustar\u000000', 257, 'latin1'); // magic "ustar\0", version "00"
  return checksum(h);
}

export interface SparseMember {
  name: string;
  /** The file's full (apparent) size. */
  realSize: number;
  /** Data regions, ascending; GNU tar ends the map with a zero-length region at the end when the file ends in a hole. */
  map: Region[];
  mtime: number;
  mode?: number;
}

/**
 * The headers of a GNU oldgnu sparse member ('S'): the main header carries the first 4 regions, each
 * extension header 21 more. The member's data (the regions' bytes, concatenated, padded to a block)
 * follows the last header.
 */
export function oldGnuSparseHeaders(m: SparseMember): Buffer {
  const stored = m.map.reduce((n, r) => n + r.length, 0);
  const h = baseHeader(m.name, m.mode ?? 0o644, stored, m.mtime, 'S');
  h.write('ustar  \u0000', 257, 'latin1'); // oldgnu magic "ustar " + version " \0"
  const first = m.map.slice(0, 4);
  first.forEach((r, i) => {
    number(h, 386 + i * 24, 12, r.offset);
    number(h, 386 + i * 24 + 12, 12, r.length);
  });
  const rest = m.map.slice(4);
  if (rest.length > 0) h[482] = 1; // isextended
  number(h, 483, 12, m.realSize);
  const blocks = [checksum(h)];
  for (let i = 0; i < rest.length; i += 21) {
    const ext = Buffer.alloc(BLOCK);
    rest.slice(i, i + 21).forEach((r, j) => {
      number(ext, j * 24, 12, r.offset);
      number(ext, j * 24 + 12, 12, r.length);
    });
    if (i + 21 < rest.length) ext[504] = 1;
    blocks.push(ext);
  }
  return Buffer.concat(blocks);
}

/** Zero bytes that pad `size` bytes of member data to a whole block. */
export function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end of an archive of `written` bytes: two zero blocks, then zeros to a whole record. */
export function trailer(written: number): Buffer {
  const end = written + 2 * BLOCK;
  return Buffer.alloc(2 * BLOCK + ((RECORD - (end % RECORD)) % RECORD));
}

function baseHeader(name: string, mode: number, size: number, mtime: number, type: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0 || bytes.length > 100) {
    throw new Error(`internal error: tar member name ${JSON.stringify(name)} must be 1-100 bytes`);
  }
  const h = Buffer.alloc(BLOCK);
  bytes.copy(h, 0);
  number(h, 100, 8, mode);
  number(h, 108, 8, 0);
  number(h, 116, 8, 0);
  number(h, 124, 12, size);
  number(h, 136, 12, mtime);
  h.write(type, 156, 'latin1');
  return h;
}

/** An octal field (NUL-terminated), or GNU's base-256 form when the value does not fit. */
function number(h: Buffer, at: number, width: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`internal error: tar field value ${value}`);
  const octal = value.toString(8);
  if (octal.length < width) {
    h.write(octal.padStart(width - 1, '0'), at, 'latin1');
    h[at + width - 1] = 0;
    return;
  }
  let v = BigInt(value);
  for (let i = width - 1; i > 0; i--) {
    h[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  h[at] = 0x80;
}

function checksum(h: Buffer): Buffer {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
  return h;
}
