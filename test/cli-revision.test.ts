import { spawnSync } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, EXAMPLE, tempDir } from './helpers.js';

describe('IMAGE@REV as a source', () => {
  const tmp = tempDir();
  afterAll(() => tmp.remove());
  const img = join(tmp.path, 'img');
  cpSync(EXAMPLE, img, { recursive: true });

  it('exports a past revision without checking it out', () => {
    expect(cli(['commit', img, '-m', 'first']).code).toBe(0);
    writeFileSync(join(img, 'home/app/.profile'), 'changed\n');
    expect(cli(['commit', img, '-m', 'second']).code).toBe(0);

    const old = cli(['tar', `${img}@HEAD~1`]);
    expect(old.code).toBe(0);
    const profile = spawnSync('tar', ['-xOf', '-', './home/app/.profile'], { input: old.stdoutBytes });
    expect(profile.stdout.toString()).toBe('hello\n');
    // The working tree was not touched.
    const now = cli(['tar', img]);
    const current = spawnSync('tar', ['-xOf', '-', './home/app/.profile'], { input: now.stdoutBytes });
    expect(current.stdout.toString()).toBe('changed\n');
  });

  it('names an unknown revision', () => {
    const res = cli(['find', `${img}@no-such-rev`]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('unknown revision "no-such-rev"');
  });
});
