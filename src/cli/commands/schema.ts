// `cloudlets schema IMAGE`: the JSON Schema a configuration of this image must satisfy.
import type { Command } from 'commander';
import { configurationSchema } from '../../config/index.js';
import { type CliContext, type GlobalOptions, writeJson } from '../context.js';
import { withImage } from '../input.js';

export async function run(
  ctx: CliContext,
  image: string,
  _opts: { json?: boolean },
  cmd: Command,
): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  await withImage(ctx, image, { manifestFile: manifest }, (img) =>
    writeJson(ctx, configurationSchema(img.manifest)),
  );
}
