// `cloudlets git IMAGE ARGS...`: runs git itself with the image directory as the repository.
import { resolve } from 'node:path';
import { CloudletsError } from '../../errors.js';
import { passthrough } from '../../vcs/repo.js';
import type { CliContext } from '../context.js';

export async function run(ctx: CliContext, image: string, args: string[]): Promise<void> {
  const code = await passthrough(resolve(ctx.cwd, image), 'git', args);
  if (code !== 0) throw new CloudletsError('EEXTERNAL', `git exited with code ${code}`, { where: image });
}
