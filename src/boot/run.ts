import { spawn } from 'node:child_process';
import { CloudletsError } from '../errors.js';
import { setChildNice } from '../util/priority.js';

export interface RunToolOptions {
  env?: NodeJS.ProcessEnv | undefined;
  /** What to do when the program is missing or fails. */
  hint?: string;
  timeoutMs?: number;
  /**
   * Run below this process's priority (a nice value, e.g. 10): for work done beside the command's own
   * that it needs only later, so that it takes the cores the command leaves rather than the command's.
   */
  nice?: number | undefined;
}

/** A host program started ahead of its run (`startToolEarly`). */
export interface EarlyTool {
  /**
   * Runs it now, with these values for the variables named when it was started (each one line of
   * text; an empty one leaves the variable unset). Its timeout starts now. Resolves with its output;
   * a missing program or a failure is a CloudletsError.
   */
  run(late: Record<string, string>): Promise<{ stdout: Buffer; stderr: string }>;
  /**
   * Its result is not wanted: a shell still waiting ends without starting the program, a program
   * running is killed (SIGKILL; `run` then rejects). Safe to call at any time, and more than once.
   */
  cancel(): void;
}

const SHELL_NAME = /^[A-Z_][A-Z0-9_]*$/;

/**
 * Starts a host program's process now and lets it run later, once its input is ready. The process is
 * a shell that reads one line per name in `lateEnv` from its standard input, exports each, then
 * becomes the program (exec), with the arguments given here; nothing of the program runs before
 * `run`. If this process ends first, the shell sees the end of its input and exits without running it.
 *
 * Why: Node starts a child by fork(). After a fork every page of this process is copy-on-write, so each
 * page it writes afterwards costs a page fault, and on a VM a fault costs some 10 us. A disk build that
 * started grub-mkimage after reading the tree (~100 MB of memory) took ~2,400 such faults; started at
 * the beginning, when this process is small and has just forked find and getfattr anyway, it takes
 * next to none.
 */
export function startToolEarly(
  cmd: string,
  args: string[],
  o: RunToolOptions & { lateEnv: string[] },
): EarlyTool {
  for (const name of o.lateEnv) {
    if (!SHELL_NAME.test(name))
      throw new Error(`startToolEarly: ${JSON.stringify(name)} is not a variable name`);
  }
  // exit 125 without a line: cancelled. exec's own failures are 126 (not executable) and 127 (missing).
  // An empty line leaves the variable unset.
  const script = `${o.lateEnv
    .map((n) => `IFS= read -r ${n} || exit 125; if [ -n "$${n}" ]; then export ${n}; else unset ${n}; fi; `)
    .join('')}exec "$@"`;
  const child = spawn('/bin/sh', ['-c', script, 'sh', cmd, ...args], {
    env: o.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (o.nice !== undefined) setChildNice(child, o.nice);
  child.stdin.on('error', () => {}); // a shell that is gone is reported by its exit
  // While it waits it must not keep this process alive: one never run nor cancelled (a bug, or a
  // process on its way out) gets the end of its input when this process ends, and exits.
  const handles = [child, child.stdin, child.stdout, child.stderr] as unknown as {
    ref(): void;
    unref(): void;
  }[];
  for (const h of handles) h.unref();
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => stdout.push(b));
  child.stderr.on('data', (b: Buffer) => stderr.push(b));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      child.on('error', (error) => resolve({ code: null, signal: null, error }));
      child.on('close', (code, signal) => resolve({ code, signal }));
    },
  );
  let state: 'waiting' | 'running' | 'cancelled' | 'ended' = 'waiting';
  const where = [cmd, ...args].join(' ');
  const fail = (message: string, cause?: unknown) =>
    new CloudletsError('EEXTERNAL', message, { where, ...(o.hint ? { hint: o.hint } : {}), cause });

  return {
    cancel() {
      if (state === 'waiting') {
        state = 'cancelled';
        child.stdin.end();
      } else if (state === 'running') {
        // Its files are about to be removed (a build that failed or was interrupted): it must stop
        // writing them.
        child.kill('SIGKILL');
      }
    },
    async run(late) {
      if (state !== 'waiting') throw new Error(`startToolEarly: ${cmd} was already ${state}`);
      const lines = o.lateEnv.map((name) => {
        const value = late[name];
        if (value === undefined || /[\n\0]/.test(value)) {
          throw new Error(`startToolEarly: ${name} needs a value of one line`);
        }
        return `${value}\n`;
      });
      state = 'running';
      for (const h of handles) h.ref();
      child.stdin.end(lines.join(''));
      const timer = setTimeout(() => child.kill('SIGTERM'), o.timeoutMs ?? 60_000);
      const end = await exited.finally(() => {
        clearTimeout(timer);
        state = 'ended';
      });
      const errText = Buffer.concat(stderr).toString('utf8').trim();
      if (end.error) throw fail(`cannot start /bin/sh for ${cmd} (${end.error.message})`, end.error);
      if (end.code === 127) throw fail(`${cmd} is not installed`);
      if (end.code !== 0) {
        const how = end.signal ? `was stopped by ${end.signal}` : `exited with ${end.code}`;
        throw fail(`${cmd} failed${errText ? `: ${errText}` : ` (it ${how})`}`);
      }
      return { stdout: Buffer.concat(stdout), stderr: errText };
    },
  };
}
