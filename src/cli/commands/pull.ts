// `cloudlets pull IMAGE [SRC]`: fetches, merges, and applies the merged metadata.
import { resolve } from 'node:path';
import { pullImage } from '../../vcs/repo.js';
import { describeSkipped } from '../../vcs/report.js';
import { type CliContext, warn, writeJson } from '../context.js';

export async function run(
  ctx: CliContext,
  image: string,
  src: string | undefined,
  opts: { trust?: boolean; json?: boolean },
): Promise<void> {
  const res = await pullImage(resolve(ctx.cwd, image), src, { trust: opts.trust });
  for (const line of describeSkipped(res.restore.skipped)) warn(ctx, line);
  for (const p of res.metadataConflicts)
    warn(ctx, `both sides changed the metadata of ${p}: kept the local one`);
  if (opts.json) return writeJson(ctx, res);
  ctx.stdout.write(
    `${res.merged ? 'merged' : 'updated'} to ${res.rev.slice(0, 12)} (${res.restore.applied} paths restored)\n`,
  );
}
