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

/** How long a failure waits for a signal that may have caused it (see main's catch). */
const SIGNAL_GRACE_MS = 20;

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
    if (interrupted) return;
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
    // Ctrl-C at a terminal signals the whole process group: a child (the template renderer, find,
    // grub-mkimage) can die of it, and its failure reach here before this process's own handler has
    // run. The signal is already pending then: one turn of the event loop delivers it.
    if (!interrupted && !(isCloudletsError(err) && err.code === 'EUSAGE')) {
      await new Promise((resolve) => setTimeout(resolve, SIGNAL_GRACE_MS));
    }
    if (interrupted) {
      // Whatever the work ended with after a signal (a child stopped by it, a tool cancelled, a stream
      // cut short) follows from the interruption, which is what the user asked for and gets reported.
      const reason = isCloudletsError(err) && err.code === 'EINTERRUPTED' ? err : controller.signal.reason;
      ctx.stderr.write(`cloudlets: ${(reason as CloudletsError).format()}\n`);
      return interrupted;
    }
    if (isCloudletsError(err)) {
      ctx.stderr.write(`cloudlets: ${err.format()}\n`);
      if (err.code === 'EINTERRUPTED') return 130;
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
