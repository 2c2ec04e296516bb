// `cloudlets build IMAGE --target NAME -o OUT` and `--format ova|gce`: build.ts hands these over here.
import { isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import type { BootMode } from '../../build/index.js';
import { parseSize } from '../../build/size.js';
import { validateConfiguration } from '../../config/index.js';
import { CloudletsError } from '../../errors.js';
import { exportEntries } from '../../pipeline/export.js';
import { buildTarget, planTarget, type TargetName } from '../../targets/index.js';
import { type CliContext, type GlobalOptions, warn, writeJson } from '../context.js';
import { readJsonInput, withImage } from '../input.js';
import { lazy, parseEpoch } from './build.js';

export interface BuildTargetCliOptions {
  target?: string;
  xenMode?: string;
  format: string;
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

export async function run(
  ctx: CliContext,
  image: string,
  opts: BuildTargetCliOptions,
  cmd: Command,
): Promise<void> {
  const { manifest: manifestFile } = cmd.optsWithGlobals<GlobalOptions>();
  // Defaults of --format and --boot give way to the target's own.
  const given = (name: string) => cmd.getOptionValueSource(name) !== 'default';
  const format = given('format') ? opts.format : undefined;
  const boot = given('boot') ? (opts.boot as BootMode) : undefined;
  const size = parseSize(opts.size);
  // The target's rules first: a wrong combination fails before the image is even opened.
  planTarget({
    target: opts.target as TargetName | undefined,
    format,
    subformat: opts.subformat,
    boot,
    size,
    xenMode: opts.xenMode,
  });
  if (!opts.output || opts.output === '-') {
    throw new CloudletsError('EUSAGE', 'a target build needs an output file', {
      where: '--output',
      hint: 'pass -o FILE',
    });
  }
  const sourceDateEpoch = parseEpoch(ctx.env.SOURCE_DATE_EPOCH);
  const timeoutMs = Number(opts.templateTimeout) * 1000;
  if (!(timeoutMs > 0)) {
    throw new CloudletsError('EUSAGE', 'must be a positive number of seconds', {
      where: '--template-timeout',
    });
  }
  const input =
    opts.config === undefined
      ? { value: {}, where: 'configuration' }
      : await readJsonInput(ctx, opts.config, 'configuration');
  const output = isAbsolute(opts.output) ? opts.output : resolve(ctx.cwd, opts.output);

  await withImage(ctx, image, { manifestFile }, async (img) => {
    const configuration = validateConfiguration(img.manifest, input.value, { where: input.where });
    const entries = () =>
      lazy(() =>
        exportEntries(img, {
          configuration,
          templateTimeoutMs: timeoutMs,
          signal: ctx.signal,
          onWarning: (m) => warn(ctx, m),
        }),
      );
    const result = await buildTarget({
      manifest: img.manifest,
      source: img.source,
      entries,
      output,
      force: opts.force ?? false,
      target: opts.target as TargetName | undefined,
      format,
      subformat: opts.subformat,
      boot,
      xenMode: opts.xenMode,
      size,
      kernel: opts.kernel,
      initrd: opts.initrd,
      cmdline: opts.cmdline,
      reproducible: opts.reproducible ?? false,
      sourceDateEpoch,
      signal: ctx.signal,
      onWarning: (m) => warn(ctx, m),
    });
    if (opts.json) writeJson(ctx, result);
    else {
      const kind = `${result.format}${result.subformat ? ` ${result.subformat}` : ''}`;
      ctx.stderr.write(
        `${result.target}: ${opts.output}: ${kind}, ${result.size / 1048576} MiB ${result.partitionTable.toUpperCase()} disk, ` +
          `boot ${result.boot}, root UUID=${result.rootFsUuid}` +
          `${result.controller ? `, ${result.controller} controller` : ''}\n`,
      );
      for (const note of result.notes) ctx.stderr.write(`  ${note}\n`);
      for (const f of result.files.slice(1)) ctx.stderr.write(`  wrote ${f}\n`);
    }
  });
}
