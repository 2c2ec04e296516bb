import type { Command } from 'commander';
import type { BootMode } from '../../build/index.js';
import { parseSize } from '../../build/size.js';
import { buildTarget, planTarget, type TargetName } from '../../targets/index.js';
import { type CliContext, warn, writeJson } from '../context.js';
import { type BuildOptions, prepareBuild, withBuildImage } from './build.js';

/** The flags of `cloudlets build`, as build.ts hands them over. */
export type BuildTargetCliOptions = BuildOptions;

export async function run(
  ctx: CliContext,
  image: string,
  opts: BuildTargetCliOptions,
  cmd: Command,
): Promise<void> {
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
  const prepared = await prepareBuild(ctx, opts, cmd);

  await withBuildImage(ctx, image, opts, prepared, async (common) => {
    const result = await buildTarget({
      ...common,
      target: opts.target as TargetName | undefined,
      format,
      subformat: opts.subformat,
      boot,
      xenMode: opts.xenMode,
      size,
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
