// Slow end-to-end tests of `cloudlets build --format raw`: the fixture image (scripts/fixture) built into
// disks that boot under SeaBIOS and OVMF in QEMU (software emulation), checked by sgdisk, sfdisk,
// fsck.vfat, e2fsck and debugfs. The fixture is built on first use (Debian archive) and cached in .cache/.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cli, spawnAsNobody, tempDir } from '../helpers.js';
import { bootDisk, bootSkipReason, ensureFixture } from './helpers.js';

const skip = process.env.CLOUDLETS_SKIP_BOOT === '1' ? 'CLOUDLETS_SKIP_BOOT=1' : bootSkipReason();
if (skip) console.log(`boot tests skipped: ${skip}`);
const SLOW = 900_000;
const EPOCH = '1700000000';
const MARKER = 'configured-marker-42';
const tmp = tempDir('cloudlets-boot-');
let fixture = '';
const timings: string[] = [];

beforeAll(() => {
  if (!skip) fixture = ensureFixture();
}, 600_000);
afterAll(() => {
  if (timings.length) console.log(`boot times: ${timings.join(', ')}`);
  tmp.remove();
});

function build(args: string[], env: NodeJS.ProcessEnv = { SOURCE_DATE_EPOCH: EPOCH }) {
  return cli(['build', ...args], { env });
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The summary printed by --json. */
interface Summary {
  rootOffset: number;
  espOffset?: number;
  rootFsUuid: string;
  size: number;
}

function checkRoot(disk: string, s: Summary) {
  const fs = `${disk}?offset=${s.rootOffset}`;
  const fsck = run('e2fsck', ['-fn', fs]);
  expect(fsck.out).not.toMatch(/fix|error|corrupt|invalid/i);
  expect(fsck.code).toBe(0);
  const cat = (p: string) => run('debugfs', ['-R', `cat ${p}`, fs]).out;
  expect(cat('/etc/marker')).toContain(MARKER);
  expect(cat('/etc/fstab')).toContain(`UUID=${s.rootFsUuid} / ext4 defaults 0 1`);
}

function checkEsp(disk: string, s: Summary) {
  const esp = join(tmp.path, 'esp.img');
  const data = readFileSync(disk).subarray(s.espOffset!, s.espOffset! + 64 * 1024 * 1024);
  writeFileSync(esp, data);
  const fsck = run('fsck.vfat', ['-n', esp]);
  const remarks = fsck.out
    .split('\n')
    .filter((l) => l && !l.startsWith('fsck.fat ') && !l.startsWith(`${esp}: `));
  expect(remarks).toEqual([]);
  expect(fsck.code).toBe(0);
  const ls = spawnSync('mdir', ['-/', '-b', '-i', `${disk}@@${s.espOffset}`, '::'], {
    encoding: 'utf8',
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
  expect(ls.stdout).toContain('::/EFI/BOOT/BOOTX64.EFI');
  rmSync(esp);
}

async function expectBoots(disk: string, firmware: 'bios' | 'uefi', label: string) {
  const r = await bootDisk(disk, firmware, 120_000);
  timings.push(`${label} ${r.seconds.toFixed(1)} s`);
  if (!r.output.includes(`CLOUDLETS-BOOT-MARKER: ${MARKER} :END`)) console.log(r.output.slice(-3000));
  expect(r.timedOut).toBe(false);
  expect(r.output).toContain(`CLOUDLETS-BOOT-MARKER: ${MARKER} :END`);
}

const config = JSON.stringify({ args: { marker: MARKER } });

describe.skipIf(skip !== undefined)('cloudlets build --format raw (slow: QEMU)', () => {
  it(
    'hybrid GPT disk: clean tables and filesystems, boots under SeaBIOS and OVMF, reproducible',
    async () => {
      const disk = join(tmp.path, 'hybrid.img');
      const r = build([fixture, '--format', 'raw', '-o', disk, '--config', config, '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const s = JSON.parse(r.stdout) as Summary;
      expect(s.size % (1024 * 1024)).toBe(0);

      const sg = run('sgdisk', ['-v', disk]);
      expect(sg.out).toContain('No problems found');
      const print = run('sgdisk', ['-p', disk]).out;
      expect(print).toMatch(/EF02\s+BIOS boot/);
      expect(print).toMatch(/EF00\s+EFI System/);
      checkEsp(disk, s);
      checkRoot(disk, s);

      const again = join(tmp.path, 'hybrid-again.img');
      expect(build([fixture, '-o', again, '--config', config]).code).toBe(0);
      expect(sha256(again)).toBe(sha256(disk));
      rmSync(again);

      await expectBoots(disk, 'bios', 'hybrid/SeaBIOS');
      await expectBoots(disk, 'uefi', 'hybrid/OVMF');
    },
    SLOW,
  );

  it(
    '--boot bios: MBR disk that SeaBIOS boots',
    async () => {
      const disk = join(tmp.path, 'bios.img');
      const r = build([fixture, '-o', disk, '--boot', 'bios', '--config', config, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as Summary;
      expect(run('sfdisk', ['-V', disk]).out).toMatch(/No errors detected/);
      expect(run('sfdisk', ['-d', disk]).out).toMatch(/label: dos/);
      checkRoot(disk, s);
      await expectBoots(disk, 'bios', 'mbr/SeaBIOS');
      rmSync(disk);
    },
    SLOW,
  );

  it(
    '--boot uefi: GPT with ESP and root that OVMF boots',
    async () => {
      const disk = join(tmp.path, 'uefi.img');
      const r = build([fixture, '-o', disk, '--boot', 'uefi', '--config', config, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as Summary;
      expect(run('sgdisk', ['-v', disk]).out).toContain('No problems found');
      expect(run('sgdisk', ['-p', disk]).out).not.toContain('EF02');
      checkEsp(disk, s);
      await expectBoots(disk, 'uefi', 'uefi/OVMF');
      rmSync(disk);
    },
    SLOW,
  );
});

describe.skipIf(skip !== undefined)('cloudlets build: bad input', () => {
  it(
    'a kernel that does not start: GRUB says so and reboots instead of waiting at a prompt',
    async () => {
      const disk = join(tmp.path, 'notkernel.img');
      expect(build([fixture, '-o', disk, '--kernel', '/bin/busybox']).code).toBe(0);
      for (const fw of ['bios', 'uefi'] as const) {
        const r = await bootDisk(disk, fw, 120_000);
        expect(r.timedOut).toBe(false);
        expect(r.output).toContain('cloudlets: the kernel did not start; rebooting');
      }
      rmSync(disk);
    },
    SLOW,
  );

  it('an image without a kernel: says what is missing and how to supply one; writes nothing', () => {
    const img = join(tmp.path, 'nokernel');
    mkdirSync(join(img, '.cloudlet'), { recursive: true });
    mkdirSync(join(img, 'etc'));
    writeFileSync(join(img, '.cloudlet', 'manifest'), '{"name":"nokernel"}');
    const out = join(tmp.path, 'nokernel.img');
    const r = build([img, '-o', out]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no kernel/);
    expect(r.stderr).toMatch(/--kernel/);
    expect(r.stderr).toMatch(/entry point/);
    expect(existsSync(out)).toBe(false);
  });

  it('a kernel path missing from the image is an error naming it', () => {
    const out = join(tmp.path, 'missing.img');
    const r = build([fixture, '-o', out, '--kernel', '/boot/vmlinuz-nope']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('/boot/vmlinuz-nope');
    expect(r.stderr).toMatch(/does not exist/);
    expect(existsSync(out)).toBe(false);
  });

  it('a kernel entry point reaching outside the image through a symlink is refused', () => {
    const img = join(tmp.path, 'escape');
    cpSync(fixture, img, { recursive: true, verbatimSymlinks: true });
    const manifest = JSON.parse(readFileSync(join(img, '.cloudlet', 'manifest'), 'utf8'));
    manifest.entrypoints = [{ type: 'kernel', path: '/boot/evil' }];
    writeFileSync(join(img, '.cloudlet', 'manifest'), JSON.stringify(manifest));
    spawnSync('ln', ['-s', '../../../../../../../../etc/hostname', join(img, 'boot', 'evil')]);
    const out = join(tmp.path, 'escape.img');
    const r = build([img, '-o', out]);
    // Either refused as escaping, or resolved inside the image root (where it does not exist).
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('/boot/evil');
    expect(existsSync(out)).toBe(false);
    rmSync(img, { recursive: true, force: true });
  });

  it('an existing output is refused without --force and left untouched', () => {
    const out = join(tmp.path, 'exists.img');
    writeFileSync(out, 'precious');
    const r = build([fixture, '-o', out]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/exists/);
    expect(r.stderr).toMatch(/--force/);
    expect(readFileSync(out, 'utf8')).toBe('precious');
    const forced = build([fixture, '-o', out, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(out).length).toBeGreaterThan(64 * 1024 * 1024);
    rmSync(out);
  });

  it('a --size too small for the content fails before writing anything', () => {
    const out = join(tmp.path, 'small.img');
    const r = build([fixture, '-o', out, '--size', '80M']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/--size/);
    expect(r.stderr).toMatch(/too small/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp.path).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

describe.skipIf(skip !== undefined)('cloudlets build: reproducibility and interruption', () => {
  it('--reproducible without SOURCE_DATE_EPOCH gives the same bytes twice; a plain build does not', () => {
    const a = join(tmp.path, 'r1.img');
    const b = join(tmp.path, 'r2.img');
    const c = join(tmp.path, 'r3.img');
    const env = { SOURCE_DATE_EPOCH: '' };
    expect(build([fixture, '-o', a, '--reproducible'], env).code).toBe(0);
    expect(build([fixture, '-o', b, '--reproducible'], env).code).toBe(0);
    expect(build([fixture, '-o', c], env).code).toBe(0);
    expect(sha256(a)).toBe(sha256(b));
    expect(sha256(c)).not.toBe(sha256(a));
    for (const f of [a, b, c]) rmSync(f);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'a non-root user (nobody) builds the same bytes as root (needs root to switch user)',
    () => {
      const shared = join(tmp.path, 'shared');
      mkdirSync(shared, { mode: 0o777 });
      chmodSync(shared, 0o777);
      chmodSync(tmp.path, 0o755);
      const asRoot = join(shared, 'root.img');
      const asNobody = join(shared, 'nobody.img');
      expect(build([fixture, '-o', asRoot, '--config', config]).code).toBe(0);
      const r = spawnAsNobody([process.execPath, CLI, 'build', fixture, '-o', asNobody, '--config', config], {
        env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH, HOME: shared },
      });
      expect(r.status, r.stderr).toBe(0);
      expect(sha256(asNobody)).toBe(sha256(asRoot));
      rmSync(shared, { recursive: true, force: true });
    },
    120_000,
  );

  /**
   * Starts a build of `img` into an empty directory, lets `signal` interrupt it (given the child and the
   * directory, it resolves once it has sent the signal), and returns its exit code and error output.
   */
  async function interruptedBuild(
    img: string,
    opts: { group: boolean },
    signal: (child: ChildProcess, outDir: string) => Promise<void>,
  ) {
    const outDir = join(tmp.path, 'intr');
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(outDir);
    const child = spawn(process.execPath, [CLI, 'build', img, '-o', join(outDir, 'disk.img')], {
      stdio: ['ignore', 'ignore', 'pipe'],
      // Its own process group, as a command at a terminal: Ctrl-C signals the whole group.
      detached: opts.group,
    });
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    await signal(child, outDir);
    return { code: await exited, stderr, left: readdirSync(outDir) };
  }

  /** Waits until the build's temporary output exists (it is writing), up to 10 s. */
  async function whenWriting(outDir: string): Promise<void> {
    for (let i = 0; i < 2000; i++) {
      if (readdirSync(outDir).some((n) => n.endsWith('.tmp'))) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('the build never started writing');
  }

  /** An image of the fixture and 512 MiB more: the writer is busy long enough to be interrupted mid-way. */
  function bigImage(): string {
    const img = join(tmp.path, 'big');
    rmSync(img, { recursive: true, force: true });
    cpSync(fixture, img, { recursive: true, verbatimSymlinks: true });
    for (let i = 0; i < 4; i++) writeFileSync(join(img, `big${i}`), Buffer.alloc(128 * 1024 * 1024, i + 1));
    return img;
  }

  it('an interrupted build leaves neither the output nor a temporary file', async () => {
    const img = bigImage();
    const r = await interruptedBuild(img, { group: false }, async (child, outDir) => {
      await whenWriting(outDir);
      child.kill('SIGINT');
    });
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/^cloudlets: .*interrupted/);
    expect(r.left).toEqual([]);
    rmSync(img, { recursive: true, force: true });
  }, 120_000);

  it('Ctrl-C (SIGINT to the process group) reports the interruption, not a child it stopped; SIGTERM stops a render at once', async () => {
    // The child processes die of the same signal: the template renderer while it renders, then GRUB's
    // processes and the output's writes. Each of their failures used to end the build as its own error.
    const img = bigImage();
    // A template that keeps the renderer busy for 4 s (within the 10 s limit).
    writeFileSync(
      join(img, 'etc/marker'),
      '<% const until = Date.now() + 4000; while (Date.now() < until) {} %>slow\n',
    );
    const group = (child: ChildProcess) => process.kill(-(child.pid as number), 'SIGINT');
    const rendering = await interruptedBuild(img, { group: true }, async (child) => {
      await new Promise((r) => setTimeout(r, 1500));
      group(child);
    });
    expect(rendering.code, rendering.stderr).toBe(130);
    expect(rendering.stderr).toBe('cloudlets: interrupted by SIGINT\n');
    expect(rendering.left).toEqual([]);

    // SIGTERM to the command alone (a service manager, a cancelled CI job): the renderer, which the
    // signal did not reach, is stopped at once rather than left to finish its template.
    let sentAt = 0;
    const terminated = await interruptedBuild(img, { group: false }, async (child) => {
      await new Promise((r) => setTimeout(r, 1500));
      sentAt = Date.now();
      child.kill('SIGTERM');
    });
    expect(terminated.code, terminated.stderr).toBe(143);
    expect(terminated.stderr).toBe('cloudlets: interrupted by SIGTERM\n');
    expect(Date.now() - sentAt).toBeLessThan(2_000);
    expect(terminated.left).toEqual([]);

    writeFileSync(join(img, 'etc/marker'), 'quick\n');
    const writing = await interruptedBuild(img, { group: true }, async (child, outDir) => {
      await whenWriting(outDir);
      group(child);
    });
    expect(writing.code, writing.stderr).toBe(130);
    expect(writing.stderr).toMatch(/^cloudlets: .*interrupted/);
    expect(writing.left).toEqual([]);
    rmSync(img, { recursive: true, force: true });
  }, 120_000);
});
