// The command's loader (scripts/cli-loader.cjs, built to dist/cli/main.cjs): what it does before the
// program runs must never stop the program from running.
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, EXAMPLE, tempDirsPerTest } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '..');
const tempDirs = tempDirsPerTest('cloudlets-loader-');

/**
 * Runs `args` through `loader` with a preload that notes when V8's flags change and prints, at exit, the
 * public built-in modules loaded after that.
 */
function builtinsAfterFlagChange(loader: string, args: string[]): { code: number | null; late: string[] } {
  const dir = tempDirs();
  const probe = join(dir, 'probe.cjs');
  const report = join(dir, 'late.json');
  writeFileSync(
    probe,
    `const v8 = require('node:v8'); const { isBuiltin } = require('node:module'); const set = v8.setFlagsFromString;
let at;
v8.setFlagsFromString = (flags) => { at ??= process.moduleLoadList.length; set(flags); };
process.on('exit', () => {
  const late = (at === undefined ? [] : process.moduleLoadList.slice(at))
    .filter((m) => m.startsWith('NativeModule ') && isBuiltin(m.slice(13)) && !m.startsWith('NativeModule internal/'))
    .map((m) => m.slice(13));
  require('node:fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify({ changed: at !== undefined, late }));
});`,
  );
  const res = spawnSync(process.execPath, ['--require', probe, loader, ...args], {
    env: { ...process.env, CI: 'true' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const { changed, late } = JSON.parse(readFileSync(report, 'utf8')) as { changed: boolean; late: string[] };
  expect(changed).toBe(true);
  return { code: res.status, late };
}

describe('the command loader', () => {
  it("loads the built-in modules a command uses before it changes V8's flags (their code cache is kept)", () => {
    const known = JSON.parse(readFileSync(join(ROOT, 'dist/cli/builtins.json'), 'utf8'));
    expect(known.node).toBe(process.version);
    expect(known.commands.tar).toEqual(expect.arrayContaining(['crypto', 'fs/promises']));
    const { code, late } = builtinsAfterFlagChange(CLI, ['tar', EXAMPLE, '-o', '-']);
    expect(code).toBe(0);
    expect(late).toEqual([]);
  });

  it('runs commands when its list of built-ins is damaged or from another Node', () => {
    const pkg = tempDirs();
    cpSync(join(ROOT, 'dist'), join(pkg, 'dist'), { recursive: true });
    symlinkSync(join(ROOT, 'schema'), join(pkg, 'schema'));
    cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    const loader = join(pkg, 'dist/cli/main.cjs');
    const list = join(pkg, 'dist/cli/builtins.json');
    for (const content of [
      '{"node":',
      JSON.stringify({ node: 'v0.0.1', commands: { tar: ['no-such-module'] } }),
      `{"node":${JSON.stringify(process.version)},"commands":{"tar":["no-such-module",42],"__proto__":1}}`,
      JSON.stringify({ node: process.version }),
    ]) {
      writeFileSync(list, content);
      const res = spawnSync(process.execPath, [loader, 'tar', EXAMPLE, '-o', '-'], {
        env: { ...process.env, CI: 'true' },
        stdio: ['ignore', 'ignore', 'pipe'],
        encoding: 'utf8',
      });
      expect({ content, code: res.status, stderr: res.stderr }).toEqual({ content, code: 0, stderr: '' });
    }
    // Without the list, the modules load as the program asks for them: after the flags changed.
    rmSync(list);
    const { code, late } = builtinsAfterFlagChange(loader, ['tar', EXAMPLE, '-o', '-']);
    expect(code).toBe(0);
    expect(late).toContain('crypto');
  });
});
