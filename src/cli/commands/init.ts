// `cloudlets init DIR [--force] [--dry-run] [--json]`: a starter manifest, and what was detected and why.
import { initImage } from '../../init/index.js';
import { type CliContext, writeJson } from '../context.js';

interface InitCliOptions {
  force?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

export async function run(ctx: CliContext, dir: string, opts: InitCliOptions): Promise<void> {
  const result = await initImage(dir, { force: Boolean(opts.force), dryRun: Boolean(opts.dryRun) });
  if (opts.json) {
    writeJson(ctx, result);
    return;
  }
  const width = Math.max(0, ...result.detected.map((d) => d.what.length));
  for (const d of result.detected) ctx.stdout.write(`${d.what.padEnd(width)}  ${d.path}  (${d.why})\n`);
  if (result.detected.length === 0) ctx.stdout.write('nothing detected: the manifest has only defaults\n');
  if (result.written) {
    ctx.stdout.write(`wrote ${result.manifestPath}\n`);
  } else {
    ctx.stdout.write(`\n${result.manifestPath} (not written, --dry-run):\n`);
    writeJson(ctx, result.manifest);
  }
}
