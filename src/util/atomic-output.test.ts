import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAtomicOutput } from './atomic-output.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'cloudlets-atomic-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('openAtomicOutput', () => {
  it('writes under a hidden temporary name and renames on commit', async () => {
    const path = join(dir, 'out.tar');
    const out = await openAtomicOutput(path);
    expect(out.tempPath).toMatch(/\/\.out\.tar\.cloudlets-[0-9a-f]{8}\.tmp$/);
    out.stream.write('hello');
    expect(readdirSync(dir)).not.toContain('out.tar');
    await out.commit();
    expect(readFileSync(path, 'utf8')).toBe('hello');
    expect(readdirSync(dir)).toEqual(['out.tar']);
  });

  it('refuses an existing path without force, naming it, and replaces it with force', async () => {
    const path = join(dir, 'exists');
    writeFileSync(path, 'old');
    await expect(openAtomicOutput(path)).rejects.toMatchObject({
      code: 'EEXIST',
      where: path,
      hint: expect.stringContaining('--force'),
    });
    const out = await openAtomicOutput(path, { force: true });
    out.stream.write('new');
    await out.commit();
    expect(readFileSync(path, 'utf8')).toBe('new');
  });

  it('refuses at commit a path that appeared meanwhile', async () => {
    const path = join(dir, 'race');
    const out = await openAtomicOutput(path);
    writeFileSync(path, 'theirs');
    await expect(out.commit()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(path, 'utf8')).toBe('theirs');
    expect(readdirSync(dir).filter((n) => n.includes('cloudlets-'))).toEqual([]);
  });

  it('removes the temporary file on abort', async () => {
    const path = join(dir, 'aborted');
    const out = await openAtomicOutput(path);
    out.stream.write(Buffer.alloc(100_000));
    await out.abort();
    await out.abort();
    expect(readdirSync(dir).filter((n) => n.startsWith('.aborted'))).toEqual([]);
    expect(readdirSync(dir)).not.toContain('aborted');
  });

  it('says so when the directory does not exist', async () => {
    await expect(openAtomicOutput(join(dir, 'missing/x.tar'))).rejects.toMatchObject({ code: 'EOUTPUT' });
  });
});
