// `cloudlets commit IMAGE -m MSG`: records the image (content and every bit of metadata) as a new revision.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { CloudletsError } from '../../errors.js';
import { commitImage, type VcsKind } from '../../vcs/repo.js';
import { type CliContext, type GlobalOptions, writeJson } from '../context.js';

export async function run(
  ctx: CliContext,
  image: string,
  opts: { message?: string; vcs?: VcsKind; mtimes?: boolean; json?: boolean },
  cmd: Command,
): Promise<void> {
  if (opts.message === undefined) throw new CloudletsError('EUSAGE', 'a message is required: -m MSG');
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  const res = await commitImage(resolve(ctx.cwd, image), {
    message: opts.message,
    vcs: opts.vcs,
    mtimes: opts.mtimes,
    manifestFile: manifest,
  });
  if (opts.json) return writeJson(ctx, res);
  if (res.created) ctx.stdout.write(`created a ${res.vcs} repository in ${image}\n`);
  if (!res.committed) {
    ctx.stdout.write('nothing to commit: the image matches the last revision\n');
    return;
  }
  const c = res.changes;
  ctx.stdout.write(
    `committed ${res.rev?.slice(0, 12)}: ${c.added.length} added, ${c.modified.length} modified, ` +
      `${c.deleted.length} deleted, ${res.metadata.length} metadata changes, ${res.volatile} volatile paths left out\n`,
  );
}
