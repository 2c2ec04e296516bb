// Microsoft VHDX ([MS-VHDX] 2.x), dynamic, no parent. Layout, all 1 MiB aligned where the spec wants:
//   0       file type identifier ("vhdxfile" + creator)
//   64 KiB  header 1, 128 KiB header 2 (CRC-32C each; the one with the higher sequence number is current)
//   192 KiB region table 1, 256 KiB region table 2 (identical: the BAT and the metadata region)
//   1 MiB   log (1 MiB, empty: the log GUID is zero, so there is nothing to replay)
//   2 MiB   metadata region (file parameters, virtual disk size, sector sizes, page 83 identifier)
//   3 MiB   BAT, then payload blocks in order of first touch (sparse.ts)
// Block size 1 MiB: Microsoft's advice for ext4 guests, whose scattered metadata would otherwise make
// each touched 32 MiB block (Hyper-V's default) cost 32 MiB.
import { crc32c } from '../fs/crc32c.js';
import { containerTarget } from './container.js';
import { openOutputFile, roundUp } from './file.js';
import { guidConst, guidLE, seedUuid } from './ids.js';
import type { DiskTarget, DiskTargetOptions } from './index.js';
import { sparseBlocks } from './sparse.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const BLOCK = MIB;
const LOGICAL_SECTOR = 512;
const PHYSICAL_SECTOR = 4096;
const LOG_OFFSET = MIB;
const LOG_LENGTH = MIB;
const METADATA_OFFSET = 2 * MIB;
const METADATA_LENGTH = MIB;
const BAT_OFFSET = 3 * MIB;
const PAYLOAD_BLOCK_FULLY_PRESENT = 6n;

const BAT_REGION = guidConst('2DC27766-F623-4200-9D64-115E9BFD4A08');
const METADATA_REGION = guidConst('8B7CA206-4790-4B9A-B8FE-575F050F886E');
const FILE_PARAMETERS = guidConst('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
const VIRTUAL_DISK_SIZE = guidConst('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
const PAGE83_DATA = guidConst('BECA12AB-B2E6-4523-93EF-C309E000C746');
const LOGICAL_SECTOR_SIZE = guidConst('8141BF1D-A96F-4709-BA47-F233A8FAAB5F');
const PHYSICAL_SECTOR_SIZE = guidConst('CDA348C7-445D-4471-9CC9-E9885251C556');
const IS_VIRTUAL_DISK = 2;
const IS_REQUIRED = 4;

/** Stores the CRC-32C of `b` (computed with the field zero) at `at`. */
function checksum(b: Buffer, at = 4): Buffer {
  b.writeUInt32LE(0, at);
  b.writeUInt32LE(crc32c(b), at);
  return b;
}

export async function openVhdxTarget(
  path: string,
  size: number,
  opts: DiskTargetOptions,
): Promise<DiskTarget> {
  const file = await openOutputFile(path);
  const chunkRatio = (2 ** 23 * LOGICAL_SECTOR) / BLOCK; // payload blocks per sector bitmap block
  const dataBlocks = Math.ceil(size / BLOCK);
  const batEntries = dataBlocks + Math.floor((dataBlocks - 1) / chunkRatio);
  const batLength = roundUp(batEntries * 8, MIB);
  let next = BAT_OFFSET + batLength;
  const blocks = sparseBlocks({
    file,
    size,
    blockSize: BLOCK,
    allocate: () => {
      const at = next;
      next += BLOCK;
      return at;
    },
  });

  async function complete(): Promise<void> {
    blocks.seal();
    const bat = Buffer.alloc(batLength);
    for (const [index, host] of blocks.entries()) {
      const entry = (BigInt(host / MIB) << 20n) | PAYLOAD_BLOCK_FULLY_PRESENT;
      bat.writeBigUInt64LE(entry, (index + Math.floor(index / chunkRatio)) * 8);
    }
    await file.write(BAT_OFFSET, bat);
    await file.write(METADATA_OFFSET, metadataRegion(size, seedUuid(opts.seed, 'vhdx-page83')));

    const regions = Buffer.alloc(64 * KIB);
    regions.write('regi', 0, 'latin1');
    regions.writeUInt32LE(2, 8);
    const region = (at: number, guid: Buffer, offset: number, length: number) => {
      guid.copy(regions, at);
      regions.writeBigUInt64LE(BigInt(offset), at + 16);
      regions.writeUInt32LE(length, at + 24);
      regions.writeUInt32LE(1, at + 28); // required
    };
    region(16, BAT_REGION, BAT_OFFSET, batLength);
    region(48, METADATA_REGION, METADATA_OFFSET, METADATA_LENGTH);
    checksum(regions);
    await file.write(192 * KIB, regions);
    await file.write(256 * KIB, regions);

    const header = (sequence: bigint) => {
      const h = Buffer.alloc(4 * KIB);
      h.write('head', 0, 'latin1');
      h.writeBigUInt64LE(sequence, 8);
      guidLE(seedUuid(opts.seed, 'vhdx-file-write')).copy(h, 16);
      guidLE(seedUuid(opts.seed, 'vhdx-data-write')).copy(h, 32);
      // 48: log GUID zero: the log is empty
      h.writeUInt16LE(0, 64); // log version
      h.writeUInt16LE(1, 66); // version
      h.writeUInt32LE(LOG_LENGTH, 68);
      h.writeBigUInt64LE(BigInt(LOG_OFFSET), 72);
      return checksum(h);
    };
    await file.write(64 * KIB, header(1n));
    await file.write(128 * KIB, header(2n));

    const ident = Buffer.alloc(64 * KIB);
    ident.write('vhdxfile', 0, 'latin1');
    ident.write('cloudlets', 8, 'utf16le');
    await file.write(0, ident);
    // The log region must exist in the file, and the last block must be whole.
    await file.truncate(next);
  }

  return containerTarget({ format: 'vhdx', file, size, write: blocks.write, complete });
}

function metadataRegion(size: number, page83: Buffer): Buffer {
  const m = Buffer.alloc(METADATA_LENGTH);
  m.write('metadata', 0, 'latin1');
  const items: Array<[Buffer, Buffer, number]> = [];
  const fileParameters = Buffer.alloc(8);
  fileParameters.writeUInt32LE(BLOCK, 0); // flags at 4: blocks may be freed, no parent
  items.push([FILE_PARAMETERS, fileParameters, IS_REQUIRED]);
  const virtualSize = Buffer.alloc(8);
  virtualSize.writeBigUInt64LE(BigInt(size));
  items.push([VIRTUAL_DISK_SIZE, virtualSize, IS_VIRTUAL_DISK | IS_REQUIRED]);
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    return b;
  };
  items.push([LOGICAL_SECTOR_SIZE, u32(LOGICAL_SECTOR), IS_VIRTUAL_DISK | IS_REQUIRED]);
  items.push([PHYSICAL_SECTOR_SIZE, u32(PHYSICAL_SECTOR), IS_VIRTUAL_DISK | IS_REQUIRED]);
  items.push([PAGE83_DATA, guidLE(page83), IS_VIRTUAL_DISK | IS_REQUIRED]);
  m.writeUInt16LE(items.length, 10);
  let data = 64 * KIB; // items start after the 64 KiB table
  items.forEach(([id, value, flags], i) => {
    const at = 32 + i * 32;
    id.copy(m, at);
    m.writeUInt32LE(data, at + 16);
    m.writeUInt32LE(value.length, at + 20);
    m.writeUInt32LE(flags, at + 24);
    value.copy(m, data);
    data += value.length;
  });
  return m;
}
