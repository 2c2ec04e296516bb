#!/usr/bin/env node
// The only place that calls process.exit: every command returns, or throws a CloudletsError.
// First, so that it runs before anything else is evaluated: see prestart.ts.
import './prestart.js';
import { CommanderError } from 'commander';
import { CloudletsError, isCloudletsError } from '../errors.js';
import type { CliContext } from './context.js';
import { buildProgram } from './program.js';

function formatUnexpected(err: unknown): string {
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return `internal error (a bug in cloudlets, please report it):\n${detail}`;
}

async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const ctx: CliContext = {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    interactive: Boolean(process.stderr.isTTY) && process.env.CI !== 'true',
    env: process.env,
    cwd: process.cwd(),
    signal: controller.signal,
  };
  let interrupted = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = sig === 'SIGINT' ? 130 : 143;
    controller.abort(new CloudletsError('EINTERRUPTED', `interrupted by ${sig}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed pipe (`cloudlets tar ... | head`) is the reader's choice, not an error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });

  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : 2;
    }
    if (isCloudletsError(err)) {
      ctx.stderr.write(`cloudlets: ${err.format()}\n`);
      if (err.code === 'EINTERRUPTED') return interrupted || 130;
      return err.code === 'EUSAGE' ? 2 : 1;
    }
    ctx.stderr.write(`cloudlets: ${formatUnexpected(err)}\n`);
    return 70;
  }
}

main(process.argv).then(
  (code) => {
    // Let stdout drain before leaving: a large `tar -o -` is still in flight.
    if (process.stdout.writableLength === 0) process.exit(code);
    else process.stdout.once('drain', () => process.exit(code));
  },
  (err) => {
    process.stderr.write(`cloudlets: ${formatUnexpected(err)}\n`);
    process.exit(70);
  },
);
