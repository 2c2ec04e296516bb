// `cloudlets checkout IMAGE REV`: the VCS writes the content, then owners, modes, devices and xattrs.
import { resolve } from 'node:path';
import { checkoutImage } from '../../vcs/repo.js';
import { describeSkipped } from '../../vcs/report.js';
import { type CliContext, warn, writeJson } from '../context.js';

export async function run(
  ctx: CliContext,
  image: string,
  rev: string,
  opts: { trust?: boolean; json?: boolean },
): Promise<void> {
  const res = await checkoutImage(resolve(ctx.cwd, image), rev, { trust: opts.trust });
  for (const line of describeSkipped(res.restore.skipped)) warn(ctx, line);
  if (opts.json) return writeJson(ctx, res);
  ctx.stdout.write(`checked out ${res.rev.slice(0, 12)} (${res.restore.applied} paths restored)\n`);
}
