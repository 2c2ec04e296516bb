/**
 * The 512-byte ustar header block and the pax extended-header records, shared by the writer and the
 * reader. Field layout: POSIX.1-2001 `pax` (IEEE Std 1003.1, "ustar Interchange Format").
 */

export const BLOCK = 512;
/** GNU tar pads archives to records of 20 blocks; we do the same so `cmp` against GNU output is fair. */
export const RECORD = 10240;

export const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

export type FieldName = keyof typeof FIELD;

/** Largest value an octal field of `width` bytes holds (width - 1 digits and a terminating NUL). */
export function octalMax(width: number): number {
  return OCTAL_MAX[width] ?? 8 ** (width - 1) - 1;
}
const OCTAL_MAX: Record<number, number> = { 8: 8 ** 7 - 1, 12: 8 ** 11 - 1 };

/**
 * Writes `value` into a numeric field: octal when it fits, else GNU base-256 (the high bit of the first
 * byte set; both GNU tar and libarchive read it). A pax record carries the exact value alongside.
 */
export function writeNumber(buf: Buffer, at: number, width: number, value: number | bigint): void {
  if (typeof value === 'number' && value >= 0 && value <= octalMax(width)) {
    // Hot path (several fields of every header): digits written from the right, no string.
    let v = value;
    buf[at + width - 1] = 0;
    for (let i = at + width - 2; i >= at; i--) {
      buf[i] = 0x30 + (v % 8);
      v = Math.floor(v / 8);
    }
    return;
  }
  const v = BigInt(value);
  if (v >= 0n && v <= BigInt(octalMax(width))) {
    const digits = v.toString(8).padStart(width - 1, '0');
    buf.write(digits, at, width - 1, 'latin1');
    buf[at + width - 1] = 0;
    return;
  }
  // Big-endian two's complement in the last width - 1 bytes; the first byte is the marker: 0x80 for a
  // positive, 0xff (sign extension) for a negative number.
  let x = v < 0n ? (1n << BigInt(8 * width)) + v : v;
  for (let i = width - 1; i >= 1; i--) {
    buf[at + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  buf[at] = v < 0n ? 0xff : 0x80;
}

/** Reads a numeric field: octal (space/NUL padded) or base-256. `undefined` when malformed. */
export function readNumber(buf: Buffer, at: number, width: number): bigint | undefined {
  const first = buf[at]!;
  if (first & 0x80) {
    let x = BigInt(first & 0x7f);
    const negative = first === 0xff;
    for (let i = 1; i < width; i++) x = (x << 8n) | BigInt(buf[at + i]!);
    if (negative) x -= 1n << BigInt(8 * width - 1);
    return x;
  }
  let i = at;
  const end = at + width;
  while (i < end && (buf[i] === 0x20 || buf[i] === 0)) i++;
  let x = 0n;
  let digits = 0;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c === 0x20 || c === 0) break;
    if (c < 0x30 || c > 0x37) return undefined;
    x = x * 8n + BigInt(c - 0x30);
    digits++;
  }
  for (; i < end; i++) if (buf[i] !== 0x20 && buf[i] !== 0) return undefined;
  return digits === 0 ? 0n : x;
}

/** Bytes of a NUL-terminated (or full-width) string field. */
export function readBytes(buf: Buffer, at: number, width: number): Buffer {
  const nul = buf.indexOf(0, at);
  const end = nul === -1 || nul > at + width ? at + width : nul;
  return buf.subarray(at, end);
}

/** Checksum: the sum of all header bytes with the checksum field taken as eight spaces. */
export function checksum(block: Buffer, at = 0): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = at; i < at + BLOCK; i++) {
    const c = i >= at + 148 && i < at + 156 ? 0x20 : block[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return { unsigned, signed };
}

/** Stores the checksum as GNU tar and libarchive do: six octal digits, NUL, space. */
export function writeChecksum(block: Buffer, at = 0): void {
  // Hot path (twice per entry): the field is first set to the eight spaces it counts as.
  block.fill(0x20, at + 148, at + 156);
  let sum = 0;
  const offset = block.byteOffset + at;
  if ((offset & 3) === 0) {
    // Four bytes at a time: each 32-bit word's bytes summed in two 16-bit lanes, which cannot overflow
    // (128 words × 2 bytes × 255 < 65536).
    const words = new Uint32Array(block.buffer, offset, BLOCK / 4);
    let lanes = 0;
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      lanes += (w & 0x00ff00ff) + ((w >>> 8) & 0x00ff00ff);
    }
    sum = (lanes & 0xffff) + (lanes >>> 16);
  } else {
    for (let i = at; i < at + BLOCK; i++) sum += block[i]!;
  }
  for (let i = at + 153; i >= at + 148; i--) {
    block[i] = 0x30 + (sum & 7);
    sum >>>= 3;
  }
  block[at + 154] = 0;
  block[at + 155] = 0x20;
}

export function isZeroBlock(buf: Buffer, at = 0): boolean {
  for (let i = at; i < at + BLOCK; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * One pax record, `LEN KEY=VALUE\n`, where LEN counts the bytes of the whole record including itself.
 * Values are raw bytes: the length prefix makes binary values (a NUL inside an xattr) safe.
 */
export function paxRecord(key: string, value: Buffer | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const k = Buffer.from(key, 'utf8');
  const body = k.length + v.length + 3; // ' ', '=', '\n'
  let len = body + String(body).length;
  if (String(len).length !== String(len - body).length) len = body + String(len).length;
  const out = Buffer.allocUnsafe(len);
  let at = out.write(`${len} `, 0, 'latin1');
  at += k.copy(out, at);
  out[at++] = 0x3d;
  at += v.copy(out, at);
  out[at] = 0x0a;
  return out;
}

export interface PaxRecord {
  key: string;
  value: Buffer;
}

/** Parses the body of an `x`/`g` header; `undefined` when a record is malformed. */
export function parsePaxRecords(body: Buffer): PaxRecord[] | undefined {
  const records: PaxRecord[] = [];
  let at = 0;
  while (at < body.length) {
    if (body[at] === 0) break; // some writers pad the body with NULs
    const space = body.indexOf(0x20, at);
    if (space === -1 || space - at > 20) return undefined;
    const len = Number(body.toString('latin1', at, space));
    if (!Number.isInteger(len) || len <= space - at + 1 || at + len > body.length) return undefined;
    const end = at + len;
    if (body[end - 1] !== 0x0a) return undefined;
    const eq = body.indexOf(0x3d, space + 1);
    if (eq === -1 || eq >= end) return undefined;
    records.push({
      key: body.toString('utf8', space + 1, eq),
      value: body.subarray(eq + 1, end - 1),
    });
    at = end;
  }
  return records;
}

export function isAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! > 0x7f) return false;
  return true;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

export function isUtf8(b: Buffer): boolean {
  try {
    utf8Decoder.decode(b);
    return true;
  } catch {
    return false;
  }
}
