// `cloudlets validate IMAGE [--config JSON|@FILE|-] [--strict]`: the configuration with defaults filled in.
import type { Command } from 'commander';
import { validateConfiguration } from '../../config/index.js';
import { type CliContext, type GlobalOptions, writeJson } from '../context.js';
import { readJsonInput, withImage } from '../input.js';

interface ValidateOptions {
  config?: string;
  strict?: boolean;
  json?: boolean;
}

export async function run(
  ctx: CliContext,
  image: string,
  opts: ValidateOptions,
  cmd: Command,
): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  // Read before opening the image, so that a bad configuration is reported without touching the image.
  const input =
    opts.config === undefined
      ? { value: {}, where: 'configuration' }
      : await readJsonInput(ctx, opts.config, 'configuration');
  await withImage(ctx, image, { manifestFile: manifest, strict: opts.strict }, (img) =>
    writeJson(ctx, validateConfiguration(img.manifest, input.value, { where: input.where })),
  );
}
