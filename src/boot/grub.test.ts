// GRUB's early-started images (startGrubBios, startGrubEfi): what a build that ends early relies on.
// Needs grub-mkimage and GRUB's i386-pc and x86_64-efi files (scripts/setup.sh installs them).
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { GRUB_LIB_DIR, grubConfig, startGrubBios, startGrubEfi } from './grub.js';

const haveGrub = ['i386-pc', 'x86_64-efi'].every((p) => existsSync(join(GRUB_LIB_DIR, p)));

// A work base of this file's own shows what is left behind, whatever other test files run beside it.
const work = mkdtempSync(join(tmpdir(), 'cloudlets-grub-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const at = { workBase: work };

const config = grubConfig({ rootFsUuid: '0d0b6a35-3bd8-4b6e-9d52-1b3c1ce7f1a2', kernel: '/boot/vmlinuz' });

describe.skipIf(!haveGrub)('GRUB images started early', () => {
  it('makes both images and leaves no work directory', async () => {
    const bios = startGrubBios(at);
    const efi = startGrubEfi(at);
    const [b, e] = await Promise.all([
      bios.build({ config, coreLba: 34, maxCoreBytes: 1 << 20 }),
      efi.build({ config }),
    ]);
    bios.cancel();
    efi.cancel();
    expect(b.bootImg.length).toBe(512);
    expect(b.coreImg.length).toBeGreaterThan(10_000);
    expect(e.subarray(0, 2).toString('latin1')).toBe('MZ');
    expect(readdirSync(work)).toEqual([]);
  });

  it('cancelled at any point of the making (an interrupted build), never throws and leaves nothing', async () => {
    // A build that fails or is interrupted while grub-mkimage writes cancels it from a `finally`. The
    // removal of its directory used to race with its output file (ENOTEMPTY) and throw there, hiding
    // the interruption (exit 70) and leaving the other image's directory behind.
    for (const delay of [0, 1, 2, 5, 10, 20, 40, 80]) {
      const bios = startGrubBios(at);
      const efi = startGrubEfi(at);
      const making = Promise.allSettled([
        bios.build({ config, coreLba: 34, maxCoreBytes: 1 << 20 }),
        efi.build({ config }),
      ]);
      await sleep(delay);
      expect(() => {
        bios.cancel();
        efi.cancel();
      }).not.toThrow();
      await making;
      expect(readdirSync(work), `cancelled after ${delay} ms`).toEqual([]);
    }
  });
});
