// `cloudlets validate-args IMAGE ARGS`: only the user arguments, defaults filled in.
import type { Command } from 'commander';
import { validateArgs } from '../../config/index.js';
import { type CliContext, type GlobalOptions, writeJson } from '../context.js';
import { readJsonInput, withImage } from '../input.js';

export async function run(
  ctx: CliContext,
  image: string,
  args: string,
  _opts: { json?: boolean },
  cmd: Command,
): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  const input = await readJsonInput(ctx, args, 'arguments');
  await withImage(ctx, image, { manifestFile: manifest }, (img) =>
    writeJson(ctx, validateArgs(img.manifest, input.value, { where: input.where })),
  );
}
