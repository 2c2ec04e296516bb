/**
 * CRC-32C (Castagnoli), the checksum ext4's metadata_csum feature uses. Node has no built-in CRC-32C
 * (zlib.crc32 is the other polynomial), and the metadata it covers is small, so a slice-by-8 table
 * in plain JavaScript is fast enough and avoids a native dependency.
 *
 * `crc32cRaw` neither inverts the seed nor the result, like the kernel's `crc32c_le` and e2fsprogs'
 * `ext2fs_crc32c_le`: ext4 chains checksums (`seed → inode number → inode`) in that raw form.
 */

const POLY = 0x82f63b78;
const TABLES: Uint32Array[] = buildTables();
// The tables one by one: taken apart in crc32cRaw, the array was iterated (an iterator object) per call.
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES as [
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
  Uint32Array,
];

function buildTables(): Uint32Array[] {
  const tables: Uint32Array[] = [];
  const t0 = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t0[i] = c >>> 0;
  }
  tables.push(t0);
  for (let t = 1; t < 8; t++) {
    const prev = tables[t - 1] as Uint32Array;
    const cur = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      const p = prev[i] as number;
      cur[i] = ((p >>> 8) ^ (t0[p & 0xff] as number)) >>> 0;
    }
    tables.push(cur);
  }
  return tables;
}

/** Continues a raw CRC-32C (no pre- or post-inversion) over `data`. */
export function crc32cRaw(seed: number, data: Uint8Array): number {
  const t0 = T0;
  const t1 = T1;
  const t2 = T2;
  const t3 = T3;
  const t4 = T4;
  const t5 = T5;
  const t6 = T6;
  const t7 = T7;
  let crc = seed >>> 0;
  let i = 0;
  const n = data.length;
  const end8 = n - (n % 8);
  while (i < end8) {
    const a =
      (crc ^
        (data[i] as number) ^
        ((data[i + 1] as number) << 8) ^
        ((data[i + 2] as number) << 16) ^
        ((data[i + 3] as number) << 24)) >>>
      0;
    crc =
      (t7[a & 0xff] as number) ^
      (t6[(a >>> 8) & 0xff] as number) ^
      (t5[(a >>> 16) & 0xff] as number) ^
      (t4[a >>> 24] as number) ^
      (t3[data[i + 4] as number] as number) ^
      (t2[data[i + 5] as number] as number) ^
      (t1[data[i + 6] as number] as number) ^
      (t0[data[i + 7] as number] as number);
    i += 8;
  }
  while (i < n) {
    crc = (t0[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
    i++;
  }
  return crc >>> 0;
}

/** The standard CRC-32C (initial ~0, final inversion), as iSCSI and most libraries define it. */
export function crc32c(data: Uint8Array): number {
  return ~crc32cRaw(0xffffffff, data) >>> 0;
}

/** Raw CRC-32C of a little-endian u32, the way ext4 mixes inode and group numbers into a seed. */
export function crc32cU32(seed: number, value: number): number {
  // The four bytes one at a time, without a buffer: this runs for every inode and directory block.
  const t0 = T0;
  let crc = seed >>> 0;
  let v = value >>> 0;
  for (let k = 0; k < 4; k++) {
    crc = (t0[(crc ^ v) & 0xff] as number) ^ (crc >>> 8);
    v >>>= 8;
  }
  return crc >>> 0;
}
