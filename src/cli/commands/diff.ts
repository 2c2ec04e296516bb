// `cloudlets diff IMAGE [REV [REV]]`: content from the VCS, then metadata as readable lines.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { imageDiff } from '../../vcs/repo.js';
import { type CliContext, type GlobalOptions, writeJson } from '../context.js';

export async function run(
  ctx: CliContext,
  image: string,
  from: string | undefined,
  to: string | undefined,
  opts: { json?: boolean },
  cmd: Command,
): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  const d = await imageDiff(resolve(ctx.cwd, image), { from, to, manifestFile: manifest });
  if (opts.json) return writeJson(ctx, { ...d, content: d.content.toString('utf8') });
  ctx.stdout.write(d.content);
  if (d.metadata.length > 0) {
    ctx.stdout.write(
      `# metadata ${d.from.slice(0, 12)} -> ${d.to === 'working tree' ? d.to : d.to.slice(0, 12)}\n`,
    );
    for (const m of d.metadata) ctx.stdout.write(`${m.text}\n`);
  }
}
