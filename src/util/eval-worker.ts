/**
 * A worker thread running CommonJS source given as text (`eval`). Our workers are started this way so that
 * the same code runs from dist/ and from the TypeScript sources under vitest, with no worker file to find.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

export function startEvalWorker(source: string, opts: Omit<WorkerOptions, 'eval' | 'execArgv'> = {}): Worker {
  // No inherited flags: `node --input-type=module` would make the source an ES module, without require.
  return new Worker(source, { ...opts, eval: true, execArgv: [] });
}
