// `cloudlets push IMAGE [DEST]`: sends the image's revisions to another repository.
import { resolve } from 'node:path';
import { pushImage } from '../../vcs/repo.js';
import type { CliContext } from '../context.js';

export async function run(ctx: CliContext, image: string, dest: string | undefined): Promise<void> {
  await pushImage(resolve(ctx.cwd, image), dest);
  ctx.stdout.write(`pushed ${image}${dest ? ` to ${dest}` : ''}\n`);
}
