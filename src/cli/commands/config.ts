// STUB: to be written by the command's owner.
import { CloudletsError } from '../../errors.js';
import type { CliContext } from '../context.js';

export async function run(_ctx: CliContext, ..._args: unknown[]): Promise<void> {
  throw new CloudletsError('ENOTSUP', 'config: not implemented yet');
}
