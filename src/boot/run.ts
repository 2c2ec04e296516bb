import { execFile } from 'node:child_process';
import { setPriority } from 'node:os';
import { CloudletsError } from '../errors.js';

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

/** Runs a host program with an argument array (no shell); a missing program or a failure is a CloudletsError. */
export function runTool(
  cmd: string,
  args: string[],
  o: RunToolOptions = {},
): Promise<{ stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { env: o.env ?? process.env, encoding: 'buffer', timeout: o.timeoutMs ?? 60_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const errText = stderr.toString('utf8').trim();
        if (err) {
          const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
          reject(
            new CloudletsError(
              'EEXTERNAL',
              missing
                ? `${cmd} is not installed`
                : `${cmd} failed${errText ? `: ${errText}` : ` (${err.message})`}`,
              { where: [cmd, ...args].join(' '), ...(o.hint ? { hint: o.hint } : {}), cause: err },
            ),
          );
        } else resolve({ stdout, stderr: errText });
      },
    );
    if (o.nice !== undefined && child.pid !== undefined) {
      try {
        setPriority(child.pid, o.nice);
      } catch {
        // It has already ended, or this system does not allow it: it runs at this process's priority.
      }
    }
  });
}
