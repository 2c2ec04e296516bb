import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { startToolEarly } from './run.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A program that records it ran, and the variable it was given, in `file`. */
const recorder = (file: string) =>
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell's parameter expansion, not JavaScript's
  ['sh', ['-c', 'printf "%s|%s" "${STAMP-unset}" "$1" > "$0"', file, 'argument with spaces']] as const;

describe('startToolEarly', () => {
  it('runs the program only when told, with the late variable and its own arguments', async () => {
    const file = join(dir, 'ran');
    const [cmd, args] = recorder(file);
    const tool = startToolEarly(cmd, [...args], { lateEnv: ['STAMP'] });
    await sleep(100);
    expect(existsSync(file)).toBe(false);
    await tool.run({ STAMP: '1700000000' });
    expect(readFileSync(file, 'utf8')).toBe('1700000000|argument with spaces');
  });

  it('leaves a late variable unset when given an empty line', async () => {
    const file = join(dir, 'unset');
    const [cmd, args] = recorder(file);
    const tool = startToolEarly(cmd, [...args], { lateEnv: ['STAMP'], env: { ...process.env, STAMP: 'x' } });
    await tool.run({ STAMP: '' });
    expect(readFileSync(file, 'utf8')).toBe('unset|argument with spaces');
  });

  it('never runs a cancelled program, and run then refuses', async () => {
    const file = join(dir, 'cancelled');
    const [cmd, args] = recorder(file);
    const tool = startToolEarly(cmd, [...args], { lateEnv: ['STAMP'] });
    tool.cancel();
    tool.cancel();
    await sleep(200);
    expect(existsSync(file)).toBe(false);
    await expect(tool.run({ STAMP: '1' })).rejects.toThrow(/already cancelled/);
  });

  it('kills a program cancelled while it runs: run rejects at once', async () => {
    const tool = startToolEarly('sleep', ['30'], { lateEnv: [] });
    const running = tool.run({}).catch((e: unknown) => e);
    await sleep(50);
    const before = Date.now();
    tool.cancel();
    expect(await running).toMatchObject({ code: 'EEXTERNAL', message: expect.stringMatching(/SIGKILL/) });
    expect(Date.now() - before).toBeLessThan(5_000);
  });

  it('reports a missing program by name, with the hint', async () => {
    const tool = startToolEarly('cloudlets-no-such-program', ['-x'], { lateEnv: [], hint: 'install it' });
    const err = await tool.run({}).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'EEXTERNAL',
      message: 'cloudlets-no-such-program is not installed',
      hint: 'install it',
    });
  });

  it("reports a failure with the program's own message", async () => {
    const tool = startToolEarly('sh', ['-c', 'echo "bad config" >&2; exit 3'], { lateEnv: [] });
    await expect(tool.run({})).rejects.toThrow('sh failed: bad config');
  });

  it('stops a program that outlives its timeout', async () => {
    const tool = startToolEarly('sleep', ['30'], { lateEnv: [], timeoutMs: 200 });
    await expect(tool.run({})).rejects.toThrow(/sleep failed \(it was stopped by SIGTERM\)/);
  });

  it('refuses a variable name the shell would not take, and a value of more than one line', async () => {
    expect(() => startToolEarly('true', [], { lateEnv: ['A;rm'] })).toThrow(/not a variable name/);
    const tool = startToolEarly('true', [], { lateEnv: ['A'] });
    await expect(tool.run({ A: 'one\ntwo' })).rejects.toThrow(/one line/);
    await tool.run({ A: 'one' }); // still waiting: a refused value does not use the run up
  });
});
