// `cloudlets build IMAGE --format raw -o disk.img`: a bootable disk from an image.
import { basename, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { type BootMode, type BuildDiskOptions, buildDisk } from '../../build/index.js';
import { parseSize } from '../../build/size.js';
import { validateConfiguration } from '../../config/index.js';
import { CloudletsError } from '../../errors.js';
import {
  checkSubformat,
  DISK_FORMATS,
  type DiskFormat,
  unknownFormat,
  type VhdSubformat,
  type VmdkSubformat,
} from '../../formats/index.js';
import { exportEntries } from '../../pipeline/export.js';
import type { EntryStream } from '../../stream/entry.js';
import { createProgress } from '../../util/progress.js';
import { type CliContext, type GlobalOptions, warn, writeJson } from '../context.js';
import { type JsonInput, parseTemplateTimeout, readJsonInput, withImage } from '../input.js';

export interface BuildOptions {
  format: string;
  target?: string;
  xenMode?: string;
  subformat?: string;
  output?: string;
  config?: string;
  size: string;
  boot: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  force?: boolean;
  reproducible?: boolean;
  templateTimeout: string;
  json?: boolean;
}

const BOOT_MODES: BootMode[] = ['hybrid', 'bios', 'uefi'];

export async function run(ctx: CliContext, image: string, opts: BuildOptions, cmd: Command): Promise<void> {
  // A target profile, or a packaged format (a disk inside an archive): src/targets.
  if (opts.target !== undefined || opts.format === 'ova' || opts.format === 'gce') {
    return (await import('./build-target.js')).run(ctx, image, opts, cmd);
  }
  if (!DISK_FORMATS.includes(opts.format as DiskFormat)) throw unknownFormat(opts.format);
  const format = opts.format as DiskFormat;
  checkSubformat(format, opts.subformat);
  if (!BOOT_MODES.includes(opts.boot as BootMode)) {
    throw new CloudletsError('EUSAGE', `unknown boot mode ${opts.boot}`, {
      where: '--boot',
      hint: 'hybrid, bios or uefi',
    });
  }
  const size = parseSize(opts.size);
  const prepared = await prepareBuild(ctx, opts, cmd);

  await withBuildImage(ctx, image, opts, prepared, async (common) => {
    const result = await buildDisk({
      ...common,
      format,
      subformat: opts.subformat as VmdkSubformat | VhdSubformat | undefined,
      size,
      boot: opts.boot as BootMode,
    });
    if (opts.json) writeJson(ctx, result);
    else {
      ctx.stderr.write(
        `${opts.output}: ${result.size / 1048576} MiB ${result.partitionTable.toUpperCase()} disk (${format}${opts.subformat ? ` ${opts.subformat}` : ''}), boot ${result.boot}, ` +
          `kernel ${result.kernel}, root UUID=${result.rootFsUuid}${result.fstabAdded ? ', /etc/fstab added' : ''}\n`,
      );
    }
  });
}

/** What every build needs before the image is opened: checked flags and the configuration input. */
export interface PreparedBuild {
  manifestFile: string | undefined;
  /** The output path, absolute. */
  output: string;
  sourceDateEpoch: number | undefined;
  templateTimeoutMs: number;
  input: JsonInput;
}

/** Checks the flags every build shares and reads the configuration, before anything is opened. */
export async function prepareBuild(
  ctx: CliContext,
  opts: Pick<BuildOptions, 'output' | 'config' | 'templateTimeout'>,
  cmd: Command,
): Promise<PreparedBuild> {
  const { manifest: manifestFile } = cmd.optsWithGlobals<GlobalOptions>();
  if (!opts.output || opts.output === '-') {
    throw new CloudletsError('EUSAGE', 'a build needs an output file', {
      where: '--output',
      hint: 'pass -o FILE',
    });
  }
  const sourceDateEpoch = parseEpoch(ctx.env.SOURCE_DATE_EPOCH);
  const templateTimeoutMs = parseTemplateTimeout(opts.templateTimeout);
  const input =
    opts.config === undefined
      ? { value: {}, where: 'configuration' }
      : await readJsonInput(ctx, opts.config, 'configuration');
  const output = isAbsolute(opts.output) ? opts.output : resolve(ctx.cwd, opts.output);
  return { manifestFile, output, sourceDateEpoch, templateTimeoutMs, input };
}

/**
 * Opens the image, validates the configuration against it, and hands `fn` the export stream as a
 * function (a disk build reads it twice: once to size the disk, once to write it).
 */
/** The options every disk build takes from the command line and the opened image. */
export type CommonBuildOptions = Pick<
  BuildDiskOptions,
  | 'manifest'
  | 'source'
  | 'entries'
  | 'output'
  | 'force'
  | 'kernel'
  | 'initrd'
  | 'cmdline'
  | 'reproducible'
  | 'sourceDateEpoch'
  | 'signal'
  | 'onProgress'
>;

/**
 * Opens the image, validates the configuration against it, and hands `fn` the options every build
 * shares, among them the export stream as a function (a disk build may read it twice).
 */
export async function withBuildImage<T>(
  ctx: CliContext,
  image: string,
  opts: Pick<BuildOptions, 'force' | 'kernel' | 'initrd' | 'cmdline' | 'reproducible'>,
  prepared: PreparedBuild,
  fn: (common: CommonBuildOptions) => Promise<T>,
): Promise<T> {
  // At a terminal: a bar of the bytes written against the size of the files going in.
  const progress = createProgress({
    stream: ctx.stderr,
    enabled: ctx.interactive,
    label: basename(prepared.output),
  });
  // A build reads every entry's metadata before it writes (sizes, kernels): the whole listing at once.
  const opening = { manifestFile: prepared.manifestFile, exporting: true, walk: 'find' as const };
  return withImage(ctx, image, opening, async (img) => {
    const configuration = validateConfiguration(img.manifest, prepared.input.value, {
      where: prepared.input.where,
    });
    const entries = () =>
      lazy(() =>
        exportEntries(img, {
          configuration,
          templateTimeoutMs: prepared.templateTimeoutMs,
          signal: ctx.signal,
          onWarning: (m) => warn(ctx, m),
        }),
      );
    try {
      const result = await fn({
        manifest: img.manifest,
        source: img.source,
        entries,
        output: prepared.output,
        force: opts.force ?? false,
        kernel: opts.kernel,
        initrd: opts.initrd,
        cmdline: opts.cmdline,
        reproducible: opts.reproducible ?? false,
        sourceDateEpoch: prepared.sourceDateEpoch,
        signal: ctx.signal,
        onProgress: (p) => progress.update(p.bytes, p.contentBytes),
      });
      progress.done();
      return result;
    } catch (err) {
      progress.done({ clear: true });
      throw err;
    }
  });
}

/** An iterable whose source is made on first use: buildDisk reads the stream twice. */
export async function* lazy(make: () => Promise<EntryStream>): EntryStream {
  yield* await make();
}

export function parseEpoch(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) {
    throw new CloudletsError(
      'EUSAGE',
      `SOURCE_DATE_EPOCH must be a whole number of seconds; got ${JSON.stringify(value)}`,
      {
        where: 'SOURCE_DATE_EPOCH',
      },
    );
  }
  return Number(value);
}
