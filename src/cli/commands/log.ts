// `cloudlets log IMAGE`: the revisions of an image, newest first.
import { resolve } from 'node:path';
import { CloudletsError } from '../../errors.js';
import { imageLog } from '../../vcs/repo.js';
import { type CliContext, writeJson } from '../context.js';

export async function run(
  ctx: CliContext,
  image: string,
  opts: { json?: boolean; max?: string },
): Promise<void> {
  const max = opts.max === undefined ? undefined : Number(opts.max);
  if (max !== undefined && !(Number.isInteger(max) && max > 0)) {
    throw new CloudletsError('EUSAGE', `--max must be a positive integer, not "${opts.max}"`);
  }
  const log = await imageLog(resolve(ctx.cwd, image), { max });
  if (opts.json) return writeJson(ctx, log);
  for (const e of log) ctx.stdout.write(`${e.rev.slice(0, 12)} ${e.date} ${e.author}  ${e.subject}\n`);
}
