// GRUB for the disks we build: the host's `grub-mkimage` makes a standalone core image with the whole
// config embedded (no /boot/grub on the disk, nothing read from the image at build time), for BIOS
// (i386-pc, in the BIOS boot partition or after the MBR) and UEFI (x86_64-efi, \EFI\BOOT\BOOTX64.EFI).
import { mkdtempSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CloudletsError } from '../errors.js';
import { removeWorkDir, scratchBase } from '../util/scratch-dir.js';
import { type EarlyTool, startToolEarly } from './run.js';

export const GRUB_LIB_DIR = '/usr/lib/grub';

/** Offsets in GRUB 2's i386-pc images (grub-core/boot/i386/pc/boot.S, diskboot.S; include/grub/i386/pc/boot.h). */
const BOOT_KERNEL_SECTOR = 0x5c;
const BOOT_DRIVE_CHECK = 0x66;
const DISKBOOT_BLOCKLIST_START = 0x200 - 12;

const COMMON_MODULES = [
  'ext2',
  'search',
  'search_fs_uuid',
  'linux',
  'boot',
  'serial',
  'terminal',
  'echo',
  'reboot',
  'halt',
];
const BIOS_MODULES = ['biosdisk', 'part_gpt', 'part_msdos', ...COMMON_MODULES];
const EFI_MODULES = ['part_gpt', 'part_msdos', 'efi_gop', ...COMMON_MODULES];

export interface GrubConfigOptions {
  /** ext4 filesystem UUID of the root: GRUB searches it, the kernel mounts it (`root=UUID=`). */
  rootFsUuid: string;
  /** Kernel and initrd paths inside the root filesystem. */
  kernel: string;
  initrd?: string | undefined;
  /** Extra kernel arguments, appended after ours (so they win). */
  cmdline?: string | undefined;
  /**
   * For the UEFI image: GRUB writes to the firmware console only, which firmware (OVMF, server SOL)
   * already mirrors to the serial port; writing to both would print every character twice there.
   */
  efi?: boolean | undefined;
}

/**
 * The embedded config. It runs in GRUB's rescue parser (no `normal` module: smaller, nothing to load),
 * so it is a flat list of commands; if `boot` returns, say so and reboot instead of waiting forever.
 */
export function grubConfig(o: GrubConfigOptions): string {
  const args = ['root=UUID=' + o.rootFsUuid, 'ro', 'console=tty0', 'console=ttyS0,115200'];
  args.push(...splitCmdline(o.cmdline ?? ''));
  const lines = [
    'serial --unit=0 --speed=115200',
    'terminal_input serial console',
    o.efi ? 'terminal_output console' : 'terminal_output serial console',
    `search --no-floppy --fs-uuid --set=root ${o.rootFsUuid}`,
    `linux ${[o.kernel, ...args].map((a) => quote(a, 'kernel command line')).join(' ')}`,
    ...(o.initrd ? [`initrd ${quote(o.initrd, 'initrd path')}`] : []),
    'boot',
    "echo 'cloudlets: the kernel did not start; rebooting'",
    'reboot',
  ];
  return `${lines.join('\n')}\n`;
}

function splitCmdline(cmdline: string): string[] {
  return cmdline.split(/[ \t]+/).filter((w) => w !== '');
}

/** Single-quotes one word for GRUB's parser; words that could break out of it are refused. */
function quote(word: string, what: string): string {
  if (/['\\\x00-\x1f\x7f]/.test(word)) {
    throw new CloudletsError(
      'EUSAGE',
      `${what} holds a quote, backslash or control character: ${JSON.stringify(word)}`,
      {
        hint: 'kernel paths and arguments must be plain words',
      },
    );
  }
  return `'${word}'`;
}

export interface GrubImageOptions {
  config: string;
  /** For SOURCE_DATE_EPOCH; grub-mkimage 2.06 output does not depend on time, but newer ones might. */
  env?: NodeJS.ProcessEnv;
}

/** A grub-mkimage run started before its config is known (startGrubBios, startGrubEfi). */
interface EarlyImage {
  make(config: string, env: NodeJS.ProcessEnv | undefined): Promise<Buffer>;
  cancel(): void;
}

/** Where GRUB's images come from and where their work directories go. */
export interface GrubStartOptions {
  /** GRUB's platform directories (i386-pc, x86_64-efi). */
  libDir?: string | undefined;
  /** The directory the work directory is made in; by default scratchBase() (a tmpfs when there is one). */
  workBase?: string | undefined;
}

/**
 * Starts grub-mkimage for `format` now (see startToolEarly: a process started after the build has read
 * the tree costs it page faults); it makes the image once `make` gives the config. Its work directory
 * is removed by `make` and by `cancel`.
 */
function startMkimage(format: 'i386-pc' | 'x86_64-efi', modules: string[], o: GrubStartOptions): EarlyImage {
  const libDir = o.libDir ?? GRUB_LIB_DIR;
  const dir = mkdtempSync(join(o.workBase ?? scratchBase(), 'cloudlets-grub-'));
  const cfg = join(dir, 'early.cfg');
  const out = join(dir, 'out.img');
  // Two small files: removed synchronously, so that it is gone even when the process exits right after.
  const remove = () => removeWorkDir(dir);
  let tool: EarlyTool;
  try {
    tool = startToolEarly(
      'grub-mkimage',
      ['-O', format, '-d', join(libDir, format), '-c', cfg, '-p', '/boot/grub', '-o', out, ...modules],
      {
        lateEnv: ['SOURCE_DATE_EPOCH'],
        // Built beside the root filesystem's write, which is the build's longest part and does not need it,
        // on what the write leaves of the cores: at the lowest priority, the write (its main thread and
        // its pool thread) lost less time to it, and the images were still ready when it ended (a qcow2
        // build ~22 ms faster than at nice 10, two series of 14 paired runs).
        nice: 19,
        hint: `install grub-pc-bin and grub-efi-amd64-bin (GRUB's ${format} files in ${libDir}/${format})`,
      },
    );
  } catch (err) {
    remove();
    throw err;
  }
  return {
    async make(config, env) {
      try {
        await writeFile(cfg, config);
        // Only SOURCE_DATE_EPOCH can change after the start: the rest of the environment is this process's.
        await tool.run({ SOURCE_DATE_EPOCH: env?.SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH ?? '' });
        return await readFile(out);
      } finally {
        tool.cancel();
        remove();
      }
    },
    cancel() {
      tool.cancel();
      remove();
    },
  };
}

export interface BiosBootCode {
  /** GRUB's boot.img, patched: 440 bytes of it go into the MBR. */
  bootImg: Buffer;
  /** core.img, patched to be loaded from `coreLba`. */
  coreImg: Buffer;
}

/** GRUB for BIOS, started ahead of its config (startMkimage); `build` places and patches it. */
export interface EarlyGrubBios {
  build(o: GrubImageOptions & { coreLba: number; maxCoreBytes: number }): Promise<BiosBootCode>;
  cancel(): void;
}

/**
 * GRUB for BIOS: core.img placed at `coreLba` (the BIOS boot partition on GPT, LBA 1 after an MBR) and
 * boot.img told where it is, as grub-install would: boot.img's kernel sector (u64 at 0x5c) is core.img's
 * first sector, diskboot's block list (u64 at byte 500) starts at the sector after.
 */
export function startGrubBios(o: GrubStartOptions = {}): EarlyGrubBios {
  const libDir = o.libDir ?? GRUB_LIB_DIR;
  const image = startMkimage('i386-pc', BIOS_MODULES, o);
  return {
    cancel: () => image.cancel(),
    async build(o) {
      const coreImg = await image.make(o.config, o.env);
      if (coreImg.length > o.maxCoreBytes) {
        throw new CloudletsError(
          'EOUTPUT',
          `GRUB core.img is ${coreImg.length} bytes, more than the ${o.maxCoreBytes} reserved for it`,
        );
      }
      const bootImg = await readFile(join(libDir, 'i386-pc', 'boot.img')).catch((cause: unknown) => {
        throw new CloudletsError('EEXTERNAL', "cannot read GRUB's boot.img", {
          where: join(libDir, 'i386-pc', 'boot.img'),
          hint: 'install grub-pc-bin',
          cause,
        });
      });
      bootImg.writeBigUInt64LE(BigInt(o.coreLba), BOOT_KERNEL_SECTOR);
      // grub-setup's workaround for BIOSes that pass a wrong boot drive: on a hard disk, trust 0x80+ only.
      bootImg[BOOT_DRIVE_CHECK] = 0x90;
      bootImg[BOOT_DRIVE_CHECK + 1] = 0x90;
      coreImg.writeBigUInt64LE(BigInt(o.coreLba + 1), DISKBOOT_BLOCKLIST_START);
      return { bootImg, coreImg };
    },
  };
}

/** GRUB for UEFI, started ahead of its config: a standalone BOOTX64.EFI. */
export interface EarlyGrubEfi {
  build(o: GrubImageOptions): Promise<Buffer>;
  cancel(): void;
}

export function startGrubEfi(o: GrubStartOptions = {}): EarlyGrubEfi {
  const image = startMkimage('x86_64-efi', EFI_MODULES, o);
  return { cancel: () => image.cancel(), build: (o) => image.make(o.config, o.env) };
}
