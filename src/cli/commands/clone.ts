// `cloudlets clone URL DIR`: a new image directory from a repository, metadata restored.
import { resolve } from 'node:path';
import { cloneImage, type VcsKind } from '../../vcs/repo.js';
import { describeSkipped } from '../../vcs/report.js';
import { type CliContext, warn, writeJson } from '../context.js';

export async function run(
  ctx: CliContext,
  url: string,
  dir: string,
  opts: { vcs?: VcsKind; trust?: boolean; json?: boolean },
): Promise<void> {
  // A local path is taken from the working directory; anything with a scheme goes to the VCS as is.
  const source =
    /^[a-z][a-z0-9+.-]*:\/\//i.test(url) || /^[^/]+@[^/]+:/.test(url) ? url : resolve(ctx.cwd, url);
  const res = await cloneImage(source, resolve(ctx.cwd, dir), { vcs: opts.vcs, trust: opts.trust });
  for (const line of describeSkipped(res.restore.skipped)) warn(ctx, line);
  if (opts.json) return writeJson(ctx, res);
  ctx.stdout.write(
    `cloned ${res.vcs} ${res.rev.slice(0, 12)} into ${dir} (${res.restore.applied} paths restored)\n`,
  );
}
