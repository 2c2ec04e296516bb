// `cloudlets manifest IMAGE`: the manifest with defaults filled in and `args` expanded.
import type { Command } from 'commander';
import { type CliContext, type GlobalOptions, writeJson } from '../context.js';
import { withImage } from '../input.js';

export async function run(
  ctx: CliContext,
  image: string,
  _opts: { json?: boolean },
  cmd: Command,
): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  await withImage(ctx, image, { manifestFile: manifest }, (img) => writeJson(ctx, img.manifest));
}
