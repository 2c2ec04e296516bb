// `cloudlets status IMAGE`: what a commit would record, content and metadata.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { imageStatus } from '../../vcs/repo.js';
import { type CliContext, type GlobalOptions, writeJson } from '../context.js';

export async function run(
  ctx: CliContext,
  image: string,
  opts: { json?: boolean },
  cmd: Command,
): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  const st = await imageStatus(resolve(ctx.cwd, image), { manifestFile: manifest });
  if (opts.json) return writeJson(ctx, st);
  const out: string[] = [`${st.vcs} ${st.rev ? st.rev.slice(0, 12) : '(no commit yet)'}`];
  for (const p of st.changes.added) out.push(`A ${p}`);
  for (const p of st.changes.modified) out.push(`M ${p}`);
  for (const p of st.changes.deleted) out.push(`D ${p}`);
  for (const m of st.metadata) out.push(`  ${m.text}`);
  if (st.clean) out.push('clean: nothing to commit');
  if (st.ignored.length > 0) out.push(`${st.ignored.length} volatile paths ignored (see --json)`);
  ctx.stdout.write(`${out.join('\n')}\n`);
}
