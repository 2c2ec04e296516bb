// Which kernel the disk boots: `--kernel`/`--initrd`, else the image's `kernel` entry point, else the
// newest `/boot/vmlinuz-*` with its initrd. Every path is an image path, checked to exist inside the
// image (symlinks resolved inside it) before anything is written.
import { CloudletsError } from '../errors.js';
import type { Manifest } from '../manifest/index.js';
import type { ImageSource } from '../stream/entry.js';
import { detectKernels } from './scan.js';

export interface KernelChoice {
  kernel: string;
  initrd: string | undefined;
  cmdline: string;
  /** For messages: "--kernel", "entry point 0", "detected /boot/vmlinuz-*". */
  from: string;
}

export interface ResolveKernelOptions {
  manifest: Manifest;
  source: ImageSource;
  /** /boot paths seen in the entry stream. */
  paths: Set<string>;
  kernel?: string | undefined;
  initrd?: string | undefined;
  cmdline?: string | undefined;
}

export async function resolveKernel(o: ResolveKernelOptions): Promise<KernelChoice> {
  if (o.manifest.arch !== undefined && !archOk(o.manifest.arch)) {
    throw new CloudletsError(
      'ENOTSUP',
      `the image is for ${o.manifest.arch}; bootable disks are built for x86_64 only`,
      {
        where: 'manifest arch',
      },
    );
  }
  let choice: KernelChoice | undefined;
  if (o.kernel) {
    choice = { kernel: o.kernel, initrd: o.initrd, cmdline: o.cmdline ?? '', from: '--kernel' };
  } else {
    const index = o.manifest.entrypoints.findIndex((e) => e.type === 'kernel' && archOk(e.requires?.arch));
    const ep = o.manifest.entrypoints[index];
    if (ep) {
      choice = {
        kernel: ep.path,
        initrd: o.initrd ?? ep.initrd,
        cmdline: o.cmdline ?? ep.cmdline ?? '',
        from: `manifest entrypoints[${index}]`,
      };
    } else {
      const found = detectKernels(o.paths)[0];
      if (found) {
        choice = {
          kernel: found.kernel,
          initrd: o.initrd ?? found.initrd,
          cmdline: o.cmdline ?? '',
          from: 'detected /boot/vmlinuz-*',
        };
      }
    }
  }
  if (!choice) {
    throw new CloudletsError('EUSAGE', 'the image has no kernel to boot', {
      where: o.source.description,
      hint:
        'add a kernel entry point to the manifest ({"type":"kernel","path":"/boot/vmlinuz-...","initrd":"..."}), ' +
        'put a kernel at /boot/vmlinuz-VERSION in the image, or pass --kernel PATH [--initrd PATH] (image paths)',
    });
  }
  await checkImagePath(o.source, choice.kernel, `kernel (${choice.from})`);
  if (choice.initrd) await checkImagePath(o.source, choice.initrd, `initrd (${choice.from})`);
  return choice;
}

function archOk(arch: string | string[] | undefined): boolean {
  if (arch === undefined) return true;
  const list = Array.isArray(arch) ? arch : [arch];
  return list.some((a) => ['x86_64', 'amd64', 'x86-64'].includes(a));
}

async function checkImagePath(source: ImageSource, path: string, what: string): Promise<void> {
  if (!path.startsWith('/')) {
    throw new CloudletsError('EPATH', `the ${what} must be an absolute image path`, { where: path });
  }
  // Both resolve symlinks inside the image and throw EPATH when one escapes it; a size needs no read.
  const size = source.fileSize ? await source.fileSize(path) : (await source.readFile(path))?.length;
  if (size === undefined) {
    throw new CloudletsError('EPATH', `the ${what} does not exist in the image`, {
      where: path,
      hint: 'image paths start at the image root: /boot/vmlinuz-...',
    });
  }
}
