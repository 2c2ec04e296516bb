// `cloudlets build --target NAME` / `--format ova|gce`: a bootable disk made for one place a VM runs.
// The profile (profiles.ts) picks the container and checks the target's rules before anything is written;
// the initramfs is inspected for the drivers the target's hardware needs; then the disk is built
// (src/build) and packaged (OVA, GCE archive) or given its companions (xl.cfg and the kernel for Xen, the
// RegisterImage input for EC2). Every output appears whole or not at all.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { rm, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import {
  type BootMode,
  type BuildDiskOptions,
  type BuildDiskResult,
  buildDisk,
  type DiskPlan,
} from '../build/index.js';
import { checkOutput } from '../build/output.js';
import { CloudletsError } from '../errors.js';
import type { DiskTargetOptions } from '../formats/index.js';
import { writeGceArchive } from '../package/gce.js';
import { memberStem, writeOva } from '../package/ova.js';
import { CONTROLLER_DRIVERS, type Controller, chooseController } from '../package/ovf.js';
import type { ImageSource } from '../stream/entry.js';
import { openAtomicOutput } from '../util/atomic-output.js';
import { removeWorkDir } from '../util/scratch-dir.js';
import { registerImageInput } from './ec2.js';
import { driverState, type InitrdContents, inspectInitrd, parseModulesBuiltin } from './initrd.js';
import { type OutputFormat, planTarget, type TargetName, type TargetPlan } from './profiles.js';
import { xlConfig } from './xen.js';

export type { OutputFormat, TargetName, TargetPlan } from './profiles.js';
export { isTarget, OUTPUT_FORMATS, planTarget, TARGETS } from './profiles.js';

export interface BuildTargetOptions
  extends Omit<BuildDiskOptions, 'boot' | 'roundAutoSize' | 'beforeWrite' | 'format' | 'subformat'> {
  /** Undefined with `format` ova (VMware's OVA) or gce. */
  target?: TargetName | undefined;
  /** Default: the target's first format (kvm qcow2, vmware ova, hyperv vhdx, azure vhd, xen raw...). */
  format?: string | undefined;
  subformat?: string | undefined;
  /** Default: the target's (azure bios, every other hybrid). */
  boot?: BootMode | undefined;
  /** Xen only: hvm (default), pvh or pv. */
  xenMode?: string | undefined;
  /** The virtual machine's name (OVF, xl.cfg, RegisterImage); default the manifest's name, else the output's. */
  name?: string | undefined;
  onWarning?: (message: string) => void;
}

export interface BuildTargetResult extends BuildDiskResult {
  target: TargetName;
  format: OutputFormat;
  subformat: string | undefined;
  /** Every file written, the main output first. */
  files: string[];
  notes: string[];
  /** VMware OVA: the disk controller chosen. */
  controller?: Controller | undefined;
}

export async function buildTarget(o: BuildTargetOptions): Promise<BuildTargetResult> {
  const plan = planTarget({
    target: o.target,
    format: o.format,
    subformat: o.subformat,
    boot: o.boot,
    size: o.size ?? 'auto',
    xenMode: o.xenMode,
  });
  const force = o.force ?? false;
  const output = resolve(o.output);
  const stem = basename(output, extname(output)) || 'disk';
  const side = sidecarPaths(plan, output, stem);
  for (const path of Object.values(side)) {
    if (path === output) {
      throw new CloudletsError('EUSAGE', `the disk would have the same name as a file written beside it`, {
        where: output,
        hint: 'name the disk NAME.img or NAME.raw',
      });
    }
  }
  for (const path of [output, ...Object.values(side)]) checkOutput(path, force);
  const name = o.name ?? o.manifest.name ?? stem;
  const warn = (m: string) => o.onWarning?.(m);

  const packaged = plan.format === 'ova' || plan.format === 'gce';
  // A packaged disk is built in a temporary directory beside the output, under its member name: a VMDK
  // names its own file in its descriptor, which must be the OVA member's name.
  const work = join(dirname(output), `.${basename(output)}.cloudlets-${randomBytes(4).toString('hex')}.d`);
  const stemName = memberStem(stem);
  const diskPath = !packaged
    ? output
    : join(work, plan.format === 'ova' ? `${stemName}-disk1.vmdk` : 'disk.raw');
  // On the way out of a process that exits mid-build.
  const removeWork = () => removeWorkDir(work);
  if (packaged) {
    process.once('exit', removeWork);
    mkdirSync(work);
  }

  let planned: DiskPlan | undefined;
  let controller: Controller | undefined;
  let kernelData: Buffer | undefined;
  let initrdData: Buffer | undefined;
  const beforeWrite = async (p: DiskPlan) => {
    plan.checkSize(p.size);
    planned = p;
    initrdData = p.initrd ? await o.source.readFile(p.initrd) : undefined;
    const contents = initrdData ? await inspectInitrd(initrdData) : undefined;
    const builtin = await imageBuiltins(o.source, p.kernel);
    const has = (d: string) => driverState(contents ?? NO_INITRD, d, builtin) !== 'not found as a module';
    const needs = [...plan.drivers];
    if (plan.format === 'ova' && plan.target === 'vmware') {
      const choice = chooseController(has);
      controller = choice.controller;
      if (!choice.found)
        needs.push({ anyOf: [CONTROLLER_DRIVERS[controller]], what: 'the LSI Logic SCSI disk controller' });
    }
    for (const w of driverWarnings(plan.target, p.initrd, contents, needs, has)) warn(w);
    if (plan.xenMode === 'pv' || plan.xenMode === 'pvh') kernelData = await o.source.readFile(p.kernel);
  };

  const created: string[] = [];
  try {
    const disk = await buildDisk({
      ...o,
      output: diskPath,
      force: packaged ? true : force,
      boot: plan.boot,
      format: plan.diskFormat,
      subformat: plan.subformat as DiskTargetOptions['subformat'],
      roundAutoSize: plan.roundAutoSize,
      beforeWrite,
      // The VMDK names the controller the OVF declares: SCSI ones as lsilogic (VMware's own disks on
      // PVSCSI say so too), SATA and IDE as ide.
      vmdkAdapter: () => (controller === 'pvscsi' || controller === 'lsilogic' ? 'lsilogic' : undefined),
    });
    if (!packaged) created.push(output);
    const p = planned!;
    if (o.signal?.aborted) throw new CloudletsError('EINTERRUPTED', 'interrupted', { where: output });
    if (plan.format === 'gce') {
      await writeGceArchive(diskPath, output, { mtime: p.timestamp, force, signal: o.signal });
    } else if (plan.format === 'ova') {
      await writeOva(diskPath, output, {
        flavour: plan.target === 'virtualbox' ? 'virtualbox' : 'vmware',
        stem: stemName,
        name,
        capacity: disk.size,
        controller,
        firmware: plan.boot === 'uefi' ? 'efi' : 'bios',
        seed: p.seed,
        mtime: p.timestamp,
        force,
        signal: o.signal,
      });
    }
    if (packaged) created.push(output);

    if (side.kernel && kernelData) await writeFileAtomic(side.kernel, kernelData, force, created);
    if (side.initrd && initrdData) await writeFileAtomic(side.initrd, initrdData, force, created);
    if (side.xlcfg) {
      const cfg = xlConfig({
        name,
        mode: plan.xenMode ?? 'hvm',
        disk: output,
        diskFormat: plan.diskFormat === 'qcow2' ? 'qcow2' : plan.diskFormat === 'vhd' ? 'vhd' : 'raw',
        firmware: plan.boot === 'uefi' ? 'uefi' : 'bios',
        kernel: side.kernel,
        ramdisk: initrdData ? side.initrd : undefined,
        extra: `root=UUID=${disk.rootFsUuid} ro console=hvc0${disk.cmdline ? ` ${disk.cmdline}` : ''}`,
      });
      await writeFileAtomic(side.xlcfg, Buffer.from(cfg), force, created);
    }
    if (side.ec2) {
      const input = registerImageInput({ name, boot: plan.boot, size: disk.size });
      await writeFileAtomic(side.ec2, Buffer.from(`${JSON.stringify(input, null, 2)}\n`), force, created);
    }
    return {
      ...disk,
      output,
      boot: plan.boot,
      target: plan.target,
      format: plan.format,
      subformat: plan.format === 'gce' ? undefined : plan.subformat,
      files: created,
      notes: plan.notes,
      controller,
    };
  } catch (err) {
    // Nothing of a failed build stays: the outputs written so far go too.
    for (const f of created) await unlink(f).catch(() => {});
    throw err;
  } finally {
    if (packaged) {
      await rm(work, { recursive: true, force: true }).catch(() => {});
      process.removeListener('exit', removeWork);
    }
  }
}

const NO_INITRD: InitrdContents = { modules: new Set(), builtin: new Set(), files: 0 };

interface Sidecars {
  xlcfg?: string;
  kernel?: string;
  initrd?: string;
  ec2?: string;
}

/** The files written beside the disk: `NAME.xl.cfg`, `NAME.vmlinuz`, `NAME.initrd`, `NAME.register-image.json`. */
function sidecarPaths(plan: TargetPlan, output: string, stem: string): Sidecars {
  const at = (suffix: string) => join(dirname(output), `${stem}${suffix}`);
  if (plan.target === 'xen') {
    const s: Sidecars = { xlcfg: at('.xl.cfg') };
    if (plan.xenMode !== 'hvm') {
      s.kernel = at('.vmlinuz');
      s.initrd = at('.initrd');
    }
    return s;
  }
  if (plan.target === 'ec2') return { ec2: at('.register-image.json') };
  return {};
}

/** `modules.builtin` of the kernel `/boot/vmlinuz-VERSION` from the image, when it has one. */
async function imageBuiltins(source: ImageSource, kernel: string): Promise<Set<string> | undefined> {
  const version = /\/vmlinu[xz]-([^/]+)$/.exec(kernel)?.[1];
  if (!version) return undefined;
  for (const dir of ['/lib/modules', '/usr/lib/modules']) {
    try {
      const text = await source.readFile(`${dir}/${version}/modules.builtin`);
      if (text) return parseModulesBuiltin(text.toString('utf8'));
    } catch {
      // An unreadable list (a link leaving the image...) tells nothing; the warning says so.
    }
  }
  return undefined;
}

function driverWarnings(
  target: string,
  initrd: string | undefined,
  contents: InitrdContents | undefined,
  needs: { anyOf: string[]; what: string }[],
  has: (driver: string) => boolean,
): string[] {
  const missing = needs.filter((n) => !n.anyOf.some(has));
  if (!initrd) {
    if (missing.length === 0) return [];
    const all = missing.map((n) => `${n.anyOf.join(' or ')} (${n.what})`).join(', ');
    return [`${target}: the kernel boots without an initramfs, so it must have built in: ${all}`];
  }
  const out: string[] = [];
  if (contents?.unreadable)
    out.push(`${target}: part of the initramfs ${initrd} could not be read: ${contents.unreadable}`);
  for (const n of missing) {
    out.push(
      `${target}: the initramfs ${initrd} has no ${n.anyOf.join(' or ')} module, needed for ${n.what} ` +
        '(not found as a module: fine only if the kernel has it built in)',
    );
  }
  return out;
}

async function writeFileAtomic(path: string, data: Buffer, force: boolean, created: string[]): Promise<void> {
  const out = await openAtomicOutput(path, { force });
  try {
    out.stream.write(data);
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
  created.push(path);
}
