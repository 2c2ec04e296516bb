import { execFileSync, type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach } from 'vitest';
import { CloudletsError } from '../src/errors.js';

export const CLI = resolve(import.meta.dirname, '../dist/cli/main.cjs');
export const EXAMPLE = resolve(import.meta.dirname, '../examples/sample.cloudlet');
export const isRoot = process.getuid?.() === 0;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs the built command as a user would, without a terminal. */
export function cli(
  args: string[],
  opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): CliResult {
  const res: SpawnSyncReturns<Buffer> = spawnSync(process.execPath, [CLI, ...args], {
    input: opts.input,
    env: { ...process.env, CI: 'true', ...opts.env },
    cwd: opts.cwd,
    maxBuffer: 1 << 30,
  });
  return {
    code: res.status,
    stdout: res.stdout.toString('utf8'),
    stderr: res.stderr.toString('utf8'),
    stdoutBytes: res.stdout,
  };
}

/** A temporary directory removed by the returned function. */
export function tempDir(prefix = 'cloudlets-test-'): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** A maker of temporary directories, each removed after the test that made it. Call at a file's top level. */
export function tempDirsPerTest(prefix: string): () => string {
  const made: string[] = [];
  afterEach(() => {
    for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const path = mkdtempSync(join(tmpdir(), prefix));
    made.push(path);
    return path;
  };
}

/** Runs git in a test's own repository (marked safe whoever owns it); its output, trimmed. */
export function gitIn(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-c', `safe.directory=${dir}`, '-C', dir, ...args], {
    encoding: 'utf8',
  }).trim();
}

/** The CloudletsError `fn` throws; fails the test when it throws something else or nothing. */
export function errorOf(fn: () => unknown): CloudletsError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CloudletsError) return err;
    throw err;
  }
  throw new Error('expected a CloudletsError');
}

/** Runs a program as the user `nobody` (uid and gid 65534, no groups); needs root. */
export function spawnAsNobody(
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv } = {},
): SpawnSyncReturns<string> {
  return spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...argv], {
    encoding: 'utf8',
    ...(opts.env ? { env: opts.env } : {}),
  });
}

/**
 * Walks `root` as the user `nobody` with `start` (startWalk or startFindWalk) from the built module
 * `module` (dist/stream/sources/...): the paths it gave, then the error that ended it; needs root.
 */
export function walkAsNobody(
  module: string,
  start: 'startWalk' | 'startFindWalk',
  root: string,
): { seen: string[]; code?: string; where?: string; message?: string } {
  const href = new URL(`../dist/stream/sources/${module}`, import.meta.url).href;
  const program = `
    const { ${start} } = await import(${JSON.stringify(href)});
    const walk = ${start}(${JSON.stringify(root)}, []);
    const seen = [];
    let failure = {};
    try {
      for (let r = await walk.next(); r; r = await walk.next()) seen.push(...r.map((x) => x.path.toString()));
    } catch (err) {
      failure = { code: err.code, where: err.where, message: err.message };
    }
    walk.stop();
    console.log(JSON.stringify({ seen, ...failure }));`;
  const r = spawnAsNobody([process.execPath, '--input-type=module', '-e', program]);
  if (r.status !== 0) throw new Error(`the walk as nobody failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
