/**
 * The directory-index hash: half-MD4 with the filesystem's hash seed and signed-char name bytes
 * (the superblock says "signed_directory_hash"), as the kernel's fs/ext4/hash.c defines it.
 */

const K2 = 0x5a827999;
const K3 = 0x6ed9eba1;

const rol = (x: number, s: number): number => ((x << s) | (x >>> (32 - s))) >>> 0;

function halfMd4(buf: Uint32Array, x: Uint32Array): void {
  let a = buf[0] as number;
  let b = buf[1] as number;
  let c = buf[2] as number;
  let d = buf[3] as number;
  const F = (p: number, q: number, r: number): number => r ^ (p & (q ^ r));
  const G = (p: number, q: number, r: number): number => ((p & q) + ((p ^ q) & r)) >>> 0;
  const H = (p: number, q: number, r: number): number => p ^ q ^ r;
  const i = (n: number): number => x[n] as number;
  // Round 1
  a = rol((a + F(b, c, d) + i(0)) >>> 0, 3);
  d = rol((d + F(a, b, c) + i(1)) >>> 0, 7);
  c = rol((c + F(d, a, b) + i(2)) >>> 0, 11);
  b = rol((b + F(c, d, a) + i(3)) >>> 0, 19);
  a = rol((a + F(b, c, d) + i(4)) >>> 0, 3);
  d = rol((d + F(a, b, c) + i(5)) >>> 0, 7);
  c = rol((c + F(d, a, b) + i(6)) >>> 0, 11);
  b = rol((b + F(c, d, a) + i(7)) >>> 0, 19);
  // Round 2
  a = rol((a + G(b, c, d) + i(1) + K2) >>> 0, 3);
  d = rol((d + G(a, b, c) + i(3) + K2) >>> 0, 5);
  c = rol((c + G(d, a, b) + i(5) + K2) >>> 0, 9);
  b = rol((b + G(c, d, a) + i(7) + K2) >>> 0, 13);
  a = rol((a + G(b, c, d) + i(0) + K2) >>> 0, 3);
  d = rol((d + G(a, b, c) + i(2) + K2) >>> 0, 5);
  c = rol((c + G(d, a, b) + i(4) + K2) >>> 0, 9);
  b = rol((b + G(c, d, a) + i(6) + K2) >>> 0, 13);
  // Round 3
  a = rol((a + H(b, c, d) + i(3) + K3) >>> 0, 3);
  d = rol((d + H(a, b, c) + i(7) + K3) >>> 0, 9);
  c = rol((c + H(d, a, b) + i(2) + K3) >>> 0, 11);
  b = rol((b + H(c, d, a) + i(6) + K3) >>> 0, 15);
  a = rol((a + H(b, c, d) + i(1) + K3) >>> 0, 3);
  d = rol((d + H(a, b, c) + i(5) + K3) >>> 0, 9);
  c = rol((c + H(d, a, b) + i(0) + K3) >>> 0, 11);
  b = rol((b + H(c, d, a) + i(4) + K3) >>> 0, 15);
  buf[0] = ((buf[0] as number) + a) >>> 0;
  buf[1] = ((buf[1] as number) + b) >>> 0;
  buf[2] = ((buf[2] as number) + c) >>> 0;
  buf[3] = ((buf[3] as number) + d) >>> 0;
}

/** Packs up to `num` words of `msg` the way str2hashbuf_signed does: bytes sign-extended, padded with the length. */
function str2hashbuf(msg: Buffer, start: number, len: number, out: Uint32Array, num: number): void {
  let pad = (len | (len << 8)) >>> 0;
  pad = (pad | (pad << 16)) >>> 0;
  let val = pad;
  const n = Math.min(len, num * 4);
  let w = 0;
  let left = num;
  for (let i = 0; i < n; i++) {
    const c = ((msg[start + i] as number) << 24) >> 24; // signed char
    val = (c + ((val << 8) >>> 0)) >>> 0;
    if (i % 4 === 3) {
      out[w++] = val;
      val = pad;
      left--;
    }
  }
  if (--left >= 0) out[w++] = val;
  while (--left >= 0) out[w++] = pad;
}

/** The major hash of `name` (low bit clear), as stored in and compared against dx entries. */
export function dirHash(name: Buffer, seed: Uint32Array): number {
  const buf = new Uint32Array([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476]);
  if (seed.some((v) => v !== 0)) buf.set(seed);
  const input = new Uint32Array(8);
  for (let p = 0, len = name.length; len > 0; p += 32, len -= 32) {
    str2hashbuf(name, p, len, input, 8);
    halfMd4(buf, input);
  }
  let hash = (buf[1] as number) & ~1;
  hash >>>= 0;
  if (hash === 0xfffffffe) hash = 0xfffffffc;
  return hash;
}

/** s_hash_seed as the four little-endian words the kernel hashes with. */
export function hashSeedWords(seed: Buffer): Uint32Array {
  return new Uint32Array([
    seed.readUInt32LE(0),
    seed.readUInt32LE(4),
    seed.readUInt32LE(8),
    seed.readUInt32LE(12),
  ]);
}
