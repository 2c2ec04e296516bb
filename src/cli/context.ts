import type { Writable } from 'node:stream';

/** What a command handler may touch of the outside world; tests pass their own. */
export interface CliContext {
  stdout: Writable;
  stderr: Writable;
  stdin: NodeJS.ReadableStream;
  /** stderr is a terminal: progress bars and colours are welcome. */
  interactive: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Set by the entry point when SIGINT/SIGTERM arrives, so long work can stop and clean up. */
  signal: AbortSignal;
}

/** Global options every command accepts. */
export interface GlobalOptions {
  manifest?: string;
}

export function writeJson(ctx: CliContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function warn(ctx: CliContext, message: string): void {
  ctx.stderr.write(`warning: ${message}\n`);
}
