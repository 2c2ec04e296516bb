/**
 * What `cloudlets init` proposes for an existing root filesystem: kernels and their initrds, the init
 * program, the architecture, and the usual volatile and persistent paths, each with the reason it was
 * chosen. Only looks: every path is resolved inside the root (resolve.ts), nothing is run or written.
 */
import { readdir } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import semver from 'semver';
import type { EntryPoint, Manifest } from '../manifest/index.js';
import { ELF_HEADER_BYTES, parseElfHeader } from './elf.js';
import { readHead, resolveInRoot } from './resolve.js';

export interface Detected {
  what: 'kernel' | 'initrd' | 'init' | 'arch' | 'volatile' | 'persistent';
  /** An image path, or for `volatile` the proposed pattern. */
  path: string;
  why: string;
}

export interface Detection {
  /** A starter manifest: valid as it is, meant to be edited. */
  manifest: Manifest;
  detected: Detected[];
}

export const DEFAULT_KERNEL_CMDLINE = 'console=tty0 console=ttyS0';

const INIT_CANDIDATES = ['/sbin/init', '/usr/lib/systemd/systemd', '/lib/systemd/systemd'];
/** Programs whose ELF header tells the image's architecture, most telling first. */
const ARCH_CANDIDATES = [...INIT_CANDIDATES, '/bin/sh', '/bin/busybox', '/usr/bin/busybox', '/bin/ls'];

/** Volatile patterns, each proposed only when its directory exists (as a directory, not a link). */
const VOLATILE: { dir: string; pattern: string; why: string }[] = [
  { dir: '/tmp', pattern: '/tmp/.+', why: 'temporary files' },
  { dir: '/var/tmp', pattern: '/var/tmp/.+', why: 'temporary files' },
  { dir: '/run', pattern: '/run/.+', why: 'runtime state, recreated at boot' },
  { dir: '/var/run', pattern: '/var/run/.+', why: 'runtime state, recreated at boot' },
  { dir: '/var/lock', pattern: '/var/lock/.+', why: 'lock files' },
  { dir: '/proc', pattern: '/proc/.+', why: 'kernel interface, mounted at boot' },
  { dir: '/sys', pattern: '/sys/.+', why: 'kernel interface, mounted at boot' },
  { dir: '/dev/pts', pattern: '/dev/pts/.+', why: 'pseudo-terminals, created at run time' },
  { dir: '/dev/shm', pattern: '/dev/shm/.+', why: 'shared memory, created at run time' },
  { dir: '/var/cache/apt/archives', pattern: '/var/cache/apt/archives/.+\\.deb', why: 'downloaded packages' },
  {
    dir: '/var/cache/apt/archives/partial',
    pattern: '/var/cache/apt/archives/partial/.+',
    why: 'partial downloads',
  },
  { dir: '/var/cache/apt', pattern: '/var/cache/apt/.+\\.bin$', why: 'package caches apt rebuilds' },
  {
    dir: '/var/lib/apt/lists',
    pattern: '/var/lib/apt/lists/(?!partial).+',
    why: 'package lists, fetched again by apt update',
  },
  { dir: '/var/lib/apt/lists/partial', pattern: '/var/lib/apt/lists/partial/.+', why: 'partial downloads' },
  { dir: '/var/cache/dnf', pattern: '/var/cache/dnf/.+', why: 'package manager cache' },
  { dir: '/var/cache/yum', pattern: '/var/cache/yum/.+', why: 'package manager cache' },
  { dir: '/var/cache/apk', pattern: '/var/cache/apk/.+', why: 'package manager cache' },
];

const PERSISTENT: { dir: string; why: string }[] = [
  { dir: '/var/lib', why: 'application state' },
  { dir: '/var/log', why: 'logs' },
  { dir: '/home', why: "users' files" },
  { dir: '/srv', why: 'data served by this system' },
];

/** True when `path` is a directory reached without following a link on its last components. */
async function isRealDir(root: string, path: string): Promise<boolean> {
  const found = await resolveInRoot(root, path);
  return found !== undefined && found.imagePath === path && found.stats.isDirectory();
}

const linkNote = (path: string, resolvedPath: string) =>
  resolvedPath === path ? '' : ` (a link to ${resolvedPath})`;

/** Newest kernel first: versions compared as semver after coercion, then as text. */
function compareKernelVersions(a: string, b: string): number {
  const va = semver.coerce(a);
  const vb = semver.coerce(b);
  if (va && vb && semver.compare(va, vb) !== 0) return semver.compare(vb, va);
  return b.localeCompare(a, 'en', { numeric: true });
}

async function detectKernels(root: string, detected: Detected[]): Promise<EntryPoint[]> {
  const boot = await resolveInRoot(root, '/boot');
  if (!boot?.stats.isDirectory()) return [];
  const versions: string[] = [];
  for (const name of await readdir(boot.hostPath)) {
    const m = /^vmlinuz-(.+)$/.exec(name);
    if (m?.[1] && (await resolveInRoot(root, `/boot/${name}`))?.stats.isFile()) versions.push(m[1]);
  }
  const entrypoints: EntryPoint[] = [];
  for (const version of versions.sort(compareKernelVersions)) {
    const path = `/boot/vmlinuz-${version}`;
    detected.push({ what: 'kernel', path, why: `matches /boot/vmlinuz-*; version ${version}` });
    const ep: EntryPoint = { type: 'kernel', path };
    for (const initrd of [`/boot/initrd.img-${version}`, `/boot/initramfs-${version}.img`]) {
      if ((await resolveInRoot(root, initrd))?.stats.isFile()) {
        ep.initrd = initrd;
        detected.push({ what: 'initrd', path: initrd, why: `named after kernel ${version}` });
        break;
      }
    }
    ep.cmdline = DEFAULT_KERNEL_CMDLINE;
    entrypoints.push(ep);
  }
  return entrypoints;
}

async function detectInit(root: string, detected: Detected[]): Promise<EntryPoint | undefined> {
  for (const path of INIT_CANDIDATES) {
    const found = await resolveInRoot(root, path);
    if (found?.stats.isFile() && (found.stats.mode & 0o111) !== 0) {
      detected.push({ what: 'init', path, why: `an executable file${linkNote(path, found.imagePath)}` });
      return { type: 'init', path };
    }
  }
  return undefined;
}

async function detectArch(root: string, detected: Detected[]): Promise<string | undefined> {
  for (const path of ARCH_CANDIDATES) {
    const head = await readHead(root, path, ELF_HEADER_BYTES);
    const elf = head && parseElfHeader(head);
    if (elf) {
      const resolvedPath = (await resolveInRoot(root, path))?.imagePath ?? path;
      detected.push({
        what: 'arch',
        path,
        why: `ELF header${linkNote(path, resolvedPath)}: e_machine ${elf.machine}, ${elf.bits}-bit ${elf.endian}-endian = ${elf.arch}`,
      });
      return elf.arch;
    }
  }
  return undefined;
}

/** Looks at the root filesystem at `root` (a host directory) and proposes a manifest. */
export async function detectManifest(root: string): Promise<Detection> {
  const detected: Detected[] = [];
  const arch = await detectArch(root, detected);
  const kernels = await detectKernels(root, detected);
  const init = await detectInit(root, detected);

  const volatile: string[] = [];
  for (const v of VOLATILE) {
    if (await isRealDir(root, v.dir)) {
      volatile.push(v.pattern);
      detected.push({ what: 'volatile', path: v.pattern, why: `${v.dir} exists: ${v.why}` });
    }
  }
  const persistent: string[] = [];
  for (const p of PERSISTENT) {
    if (await isRealDir(root, p.dir)) {
      persistent.push(p.dir);
      detected.push({ what: 'persistent', path: p.dir, why: `${p.dir} exists: ${p.why}` });
    }
  }

  const manifest: Manifest = {
    name: basename(resolve(root)),
    ...(arch === undefined ? {} : { arch }),
    args: { type: 'object', properties: {} },
    templates: [],
    persistent,
    volatile,
    entrypoints: [...kernels, ...(init ? [init] : [])],
  };
  return { manifest, detected };
}
