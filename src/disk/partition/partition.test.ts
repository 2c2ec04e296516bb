import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGpt, GPT_TYPE } from './gpt.js';
import { deriveUuid, guidToGptBytes } from './guid.js';
import { buildMbr } from './mbr.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-part-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const MiB = 1024 * 1024;

describe('GUIDs', () => {
  it('encodes the mixed-endian GPT form', () => {
    expect(guidToGptBytes(GPT_TYPE.esp).toString('hex')).toBe('28732ac11ff8d211ba4b00a0c93ec93b');
  });
  it('derives stable RFC 4122 version 4 UUIDs from a seed and a role', () => {
    const a = deriveUuid('seed', 'disk');
    expect(a).toBe(deriveUuid('seed', 'disk'));
    expect(a).not.toBe(deriveUuid('seed', 'esp'));
    expect(a).not.toBe(deriveUuid('other', 'disk'));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

function gptDisk(size: number) {
  return buildGpt({
    diskSize: size,
    diskGuid: deriveUuid('t', 'disk'),
    partitions: [
      {
        type: GPT_TYPE.biosBoot,
        guid: deriveUuid('t', 'p1'),
        firstLba: 2048,
        lastLba: 4095,
        name: 'BIOS boot',
      },
      {
        type: GPT_TYPE.linuxRootX86_64,
        guid: deriveUuid('t', 'p2'),
        firstLba: 4096,
        lastLba: size / 512 - 2049,
        name: 'root ünïcode',
      },
    ],
  });
}

describe('buildGpt', () => {
  it('writes headers whose CRCs and backup location are consistent', () => {
    const g = gptDisk(16 * MiB);
    const h = g.head.subarray(512, 1024);
    expect(h.subarray(0, 8).toString()).toBe('EFI PART');
    const copy = Buffer.from(h.subarray(0, 92));
    const crc = copy.readUInt32LE(16);
    copy.writeUInt32LE(0, 16);
    expect(crc32(copy)).toBe(crc);
    expect(h.readBigUInt64LE(32)).toBe(BigInt((16 * MiB) / 512 - 1));
    expect(g.tailOffset + g.tail.length).toBe(16 * MiB);
    expect(g.head[446 + 4]).toBe(0xee);
  });

  it.skipIf(!has('sgdisk'))('passes sgdisk -v and reads back names and types', () => {
    const size = 16 * MiB;
    const g = gptDisk(size);
    const img = Buffer.alloc(size);
    g.head.copy(img, 0);
    g.tail.copy(img, g.tailOffset);
    const file = join(dir, 'gpt.img');
    writeFileSync(file, img);
    const v = spawnSync('sgdisk', ['-v', file], { encoding: 'utf8' });
    expect(v.stdout).toContain('No problems found');
    const p = spawnSync('sgdisk', ['-p', file], { encoding: 'utf8' }).stdout;
    expect(p).toMatch(/1\s+2048\s+4095.*EF02\s+BIOS boot/);
    expect(p).toMatch(/8304\s+root ünïcode/);
    const i = spawnSync('sgdisk', ['-i', '2', file], { encoding: 'utf8' }).stdout;
    expect(i.toLowerCase()).toContain(deriveUuid('t', 'p2'));
  });

  it('refuses partitions outside the usable range', () => {
    expect(() =>
      buildGpt({
        diskSize: 4 * MiB,
        diskGuid: deriveUuid('t', 'disk'),
        partitions: [
          { type: GPT_TYPE.esp, guid: deriveUuid('t', 'x'), firstLba: 2048, lastLba: 8191, name: 'x' },
        ],
      }),
    ).toThrow(/outside the disk/);
  });
});

describe('buildMbr', () => {
  it.skipIf(!has('sfdisk'))('passes sfdisk -V with a bootable Linux partition', () => {
    const size = 8 * MiB;
    const img = Buffer.alloc(size);
    buildMbr({
      diskSize: size,
      diskSignature: 0xdeadbeef,
      partitions: [{ type: 0x83, firstLba: 2048, sectors: size / 512 - 2048, bootable: true }],
    }).copy(img);
    const file = join(dir, 'mbr.img');
    writeFileSync(file, img);
    expect(spawnSync('sfdisk', ['-V', file], { encoding: 'utf8' }).stdout).toContain('No errors detected');
    const d = spawnSync('sfdisk', ['-d', file], { encoding: 'utf8' }).stdout;
    expect(d).toContain('label-id: 0xdeadbeef');
    expect(d).toMatch(/start=\s*2048, size=\s*14336, type=83, bootable/);
  });
});
