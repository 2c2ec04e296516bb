// `cloudlets config IMAGE [--config JSON|@FILE|-] [--force]`: print the applied configuration, or render
// the templates of an image directory in place and record the configuration.
import type { Command } from 'commander';
import { validateConfiguration } from '../../config/index.js';
import { configureImage, readAppliedConfig } from '../../configure/index.js';
import { CloudletsError } from '../../errors.js';
import { type CliContext, type GlobalOptions, warn, writeJson } from '../context.js';
import { parseTemplateTimeout, readJsonInput, withImage } from '../input.js';

interface ConfigOptions {
  config?: string;
  force?: boolean;
  templateTimeout: string;
  json?: boolean;
}

export async function run(ctx: CliContext, image: string, opts: ConfigOptions, cmd: Command): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  const timeoutMs = parseTemplateTimeout(opts.templateTimeout ?? '10');
  // Read before opening the image, so that a bad configuration is reported without touching the image.
  const input =
    opts.config === undefined ? undefined : await readJsonInput(ctx, opts.config, 'configuration');

  await withImage(ctx, image, { manifestFile: manifest }, async (img) => {
    if (input === undefined) {
      const applied = await readAppliedConfig(img.source);
      if (opts.json) writeJson(ctx, applied ?? null);
      else if (applied === undefined) ctx.stderr.write(`${image}: no configuration has been applied\n`);
      else writeJson(ctx, applied);
      return;
    }
    if (img.kind !== 'directory') {
      throw new CloudletsError('EUSAGE', 'only an image directory can be configured in place', {
        where: image,
        hint: 'to configure an archive on the way out: cloudlets tar IMAGE --config ... -o configured.tar',
      });
    }
    const configuration = validateConfiguration(img.manifest, input.value, { where: input.where });
    const result = await configureImage(img.location, {
      configuration,
      manifest: img.manifest,
      force: opts.force === true,
      timeoutMs,
      source: img.source,
      signal: ctx.signal,
    });
    for (const path of result.missing)
      warn(ctx, `${path}: listed in "templates" but not in the image; skipped`);
    if (opts.json) writeJson(ctx, { configuration, rendered: result.rendered, missing: result.missing });
    else for (const path of result.rendered) ctx.stdout.write(`rendered ${path}\n`);
  });
}
