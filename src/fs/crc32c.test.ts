import { expect, it } from 'vitest';
import { crc32c, crc32cRaw, crc32cU32 } from './crc32c.js';

it('computes CRC-32C (Castagnoli) check values', () => {
  expect(crc32c(Buffer.from('123456789')).toString(16)).toBe('e3069283');
  expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  // The raw form chains: two halves give the checksum of the whole.
  const data = Buffer.from('the quick brown fox jumps over the lazy dog');
  expect(crc32cRaw(crc32cRaw(0xffffffff, data.subarray(0, 17)), data.subarray(17))).toBe(
    crc32cRaw(0xffffffff, data),
  );
});

it('crc32cU32 is the raw checksum of the value as four little-endian bytes', () => {
  for (const [seed, value] of [
    [0xffffffff, 0],
    [0x12345678, 2],
    [0, 0xffffffff],
    [0xdeadbeef, 0x80000001],
  ] as const) {
    const le = Buffer.alloc(4);
    le.writeUInt32LE(value);
    expect(crc32cU32(seed, value)).toBe(crc32cRaw(seed, le));
  }
});
