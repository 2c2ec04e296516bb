import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliContext } from './context.js';
import { readJsonInput } from './input.js';

function context(cwd: string, stdin = ''): CliContext {
  return {
    stdout: new PassThrough(),
    stderr: new PassThrough(),
    stdin: Readable.from([Buffer.from(stdin)]),
    interactive: false,
    env: {},
    cwd,
    signal: new AbortController().signal,
  };
}

describe('readJsonInput', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cloudlets-input-'));
    await writeFile(join(dir, 'good.json'), '{"args": {"hostname": "h"}}');
    await writeFile(join(dir, 'bad.json'), '{\n  "args": {\n    "hostname": "h",\n  }\n}');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads inline JSON, @FILE relative to the working directory, and - from standard input', async () => {
    const ctx = context(dir, '{"a": 1}');
    expect(await readJsonInput(ctx, '{"b": 2}', 'configuration')).toEqual({
      value: { b: 2 },
      where: 'configuration',
    });
    expect(await readJsonInput(ctx, '@good.json', 'configuration')).toEqual({
      value: { args: { hostname: 'h' } },
      where: 'good.json',
    });
    expect(await readJsonInput(ctx, '-', 'configuration')).toEqual({
      value: { a: 1 },
      where: 'standard input',
    });
  });

  it('names the source and the line/column of a syntax error', async () => {
    const ctx = context(dir);
    await expect(readJsonInput(ctx, '@bad.json', 'configuration')).rejects.toMatchObject({
      code: 'ECONFIG',
      where: 'bad.json',
      message: expect.stringMatching(/^invalid JSON at line 4, column 3: unexpected "}"/),
    });
    await expect(readJsonInput(ctx, '{"a":', 'arguments')).rejects.toMatchObject({
      where: 'arguments',
      message: expect.stringMatching(/line 1, column 6: unexpected end of input/),
    });
  });

  it('refuses a missing file, a directory and prototype keys', async () => {
    const ctx = context(dir);
    await expect(readJsonInput(ctx, '@nope.json', 'configuration')).rejects.toMatchObject({
      message: 'no such file',
    });
    await expect(readJsonInput(ctx, `@${dir}`, 'configuration')).rejects.toMatchObject({
      message: 'is a directory, not a file',
    });
    await expect(readJsonInput(ctx, '{"args": {"constructor": {}}}', 'configuration')).rejects.toMatchObject({
      code: 'ECONFIG',
      message: expect.stringMatching(/^\/args\/constructor: the key/),
    });
  });
});
