/**
 * A worker thread running CommonJS source given as text (`eval`). Our workers are started this way so that
 * the same code runs from dist/ and from the TypeScript sources under vitest, with no worker file to find.
 */
import { createRequire } from 'node:module';
import type { Worker, WorkerOptions } from 'node:worker_threads';

/**
 * node:worker_threads, loaded on the first worker: every command that opens a directory imports the walk
 * thread's module, but a disk build lists the tree with find and most never start a worker, and loading
 * the module (with the internals it brings) took some 5 ms of the start of every command.
 */
let workerThreads: typeof import('node:worker_threads') | undefined;

export function startEvalWorker(source: string, opts: Omit<WorkerOptions, 'eval' | 'execArgv'> = {}): Worker {
  workerThreads ??= createRequire(import.meta.url)(
    'node:worker_threads',
  ) as typeof import('node:worker_threads');
  // No inherited flags: `node --input-type=module` would make the source an ES module, without require.
  return new workerThreads.Worker(source, { ...opts, eval: true, execArgv: [] });
}
