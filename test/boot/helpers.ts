// Shared by the boot tests: the fixture image and a QEMU runner.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURE_DIR = join(REPO, '.cache', 'fixture', 'image');

export const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Why boot tests cannot run here, or undefined. */
export function bootSkipReason(): string | undefined {
  const reason = missingForBoot();
  // CI installs everything (scripts/setup.sh): a missing piece there is a failure, never a quiet skip.
  if (reason && process.env.CI === 'true') throw new Error(`boot tests cannot run in CI: ${reason}`);
  return reason;
}

function missingForBoot(): string | undefined {
  for (const c of ['qemu-system-x86_64', 'grub-mkimage', 'sgdisk', 'fsck.vfat', 'mdir', 'e2fsck']) {
    if (!has(c)) return `${c} is not installed`;
  }
  if (!existsSync('/usr/lib/grub/i386-pc/boot.img')) return 'grub-pc-bin is not installed';
  if (!existsSync('/usr/lib/grub/x86_64-efi')) return 'grub-efi-amd64-bin is not installed';
  if (!existsSync(FIXTURE_DIR) && !has('apt-get')) return 'no fixture and no apt-get to build it';
  return undefined;
}

/**
 * Builds (or reuses) the fixture image: scripts/fixture/build-fixture.sh, cached in .cache/fixture and
 * rebuilt when the script changes (the downloaded packages stay cached).
 */
export function ensureFixture(): string {
  const script = join(REPO, 'scripts', 'fixture', 'build-fixture.sh');
  const stamp = join(dirname(FIXTURE_DIR), 'image.stamp');
  const digest = createHash('sha256').update(readFileSync(script)).digest('hex');
  const current = existsSync(stamp) ? readFileSync(stamp, 'utf8') : '';
  if (current !== digest || !existsSync(join(FIXTURE_DIR, '.cloudlet', 'manifest'))) {
    execFileSync(script, [], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 600_000 });
    writeFileSync(stamp, digest);
  }
  return FIXTURE_DIR;
}

export interface BootResult {
  output: string;
  seconds: number;
  timedOut: boolean;
}

/**
 * Boots a disk under SeaBIOS or OVMF, read-only (-snapshot), until QEMU exits or the timeout. `format` is
 * QEMU's name for the container (raw, qcow2, vmdk, vpc, vhdx, vdi), always given: QEMU takes a fixed VHD
 * for raw otherwise.
 */
export function bootDisk(
  disk: string,
  firmware: 'bios' | 'uefi',
  timeoutMs = 120_000,
  format = 'raw',
): Promise<BootResult> {
  const args = ['-m', '512', '-nographic', '-serial', 'mon:stdio', '-no-reboot', '-nic', 'none', '-snapshot'];
  args.push('-drive', `file=${disk},format=${format},if=virtio`);
  if (firmware === 'uefi') args.push('-bios', '/usr/share/ovmf/OVMF.fd');
  const started = Date.now();
  return new Promise((done) => {
    const q = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    q.stdout.on('data', (d: Buffer) => {
      out += d.toString('latin1');
    });
    q.stderr.on('data', (d: Buffer) => {
      out += d.toString('latin1');
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      q.kill('SIGKILL');
    }, timeoutMs);
    q.on('close', () => {
      clearTimeout(timer);
      done({ output: out, seconds: (Date.now() - started) / 1000, timedOut });
    });
  });
}
