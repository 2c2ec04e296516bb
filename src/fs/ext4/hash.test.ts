import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { dirHash, hashSeedWords } from './hash.js';

it('hashes names as e2fsprogs does (debugfs dx_hash, half_md4)', () => {
  const seed = Buffer.from('fedcba9876543210fedcba9876543210', 'hex');
  const uuid = seed.toString('hex').replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5');
  const names = [
    'a',
    'lost+found',
    'file-00001',
    'x'.repeat(31),
    'y'.repeat(32),
    'z'.repeat(33),
    'n'.repeat(255),
  ];
  for (const name of names) {
    const out = execFileSync('debugfs', ['-R', `dx_hash -h half_md4 -s ${uuid} ${name}`, '/dev/null'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const printed = Number(/Hash of .* is (0x[0-9a-f]+)/.exec(out)?.[1]);
    expect([name, dirHash(Buffer.from(name), hashSeedWords(seed))]).toEqual([name, printed]);
  }
});
