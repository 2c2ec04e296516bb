// Runs an external program with an argument array (no shell), collecting its output as bytes.
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { CloudletsError } from '../errors.js';

export interface RunOptions {
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Bytes for standard input, or a stream piped to it as it comes; standard input is closed when absent. */
  input?: Buffer | string | Readable;
  /** Exit codes that are not failures (default `[0]`). */
  okCodes?: number[];
  /** Pass output straight through to this process's terminal (passthrough commands). */
  inherit?: boolean;
  signal?: AbortSignal;
  /** The command as shown in errors, when the real one carries noise (`-c` settings). */
  display?: string;
}

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs `cmd args`; a missing program or a failing exit code becomes a CloudletsError naming both. */
export function runProgram(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const shown = (opts.display ?? `${cmd} ${args.join(' ')}`).slice(0, 300);
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: opts.inherit ? 'inherit' : ['pipe', 'pipe', 'pipe'],
      signal: opts.signal,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    child.stdin?.on('error', () => {}); // the program may exit before reading all of its input
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new CloudletsError('EEXTERNAL', e.code === 'ENOENT' ? `${cmd} is not installed` : e.message, {
          where: opts.cwd,
          hint:
            e.code === 'ENOENT'
              ? `install ${cmd} (Debian: apt-get install ${cmd === 'hg' ? 'mercurial' : cmd})`
              : undefined,
          cause: e,
        }),
      );
    });
    child.on('close', (code, sig) => {
      const stderr = Buffer.concat(err).toString('utf8');
      // Some programs (git pull -q, hg merge) tell why they failed on standard output.
      const said = stderr.trim() || Buffer.concat(out).toString('utf8').trim();
      const rc = code ?? 128;
      if (!(opts.okCodes ?? [0]).includes(rc)) {
        const why = sig ? `killed by ${sig}` : `exit code ${rc}`;
        reject(
          new CloudletsError(
            'EEXTERNAL',
            `\`${shown}\` failed (${why})${said ? `: ${said.slice(0, 2000)}` : ''}`,
            {
              where: opts.cwd,
            },
          ),
        );
        return;
      }
      resolve({ code: rc, stdout: Buffer.concat(out), stderr });
    });
    if (child.stdin) {
      if (opts.input === undefined) child.stdin.end();
      else if (typeof opts.input === 'string' || Buffer.isBuffer(opts.input)) child.stdin.end(opts.input);
      else opts.input.pipe(child.stdin);
    }
  });
}
