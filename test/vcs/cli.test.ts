// The versioning commands as a user meets them: help with examples, usage errors, passthrough.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, tempDir } from '../helpers.js';

const ENV = {
  GIT_AUTHOR_NAME: 'T',
  GIT_AUTHOR_EMAIL: 't@e',
  GIT_COMMITTER_NAME: 'T',
  GIT_COMMITTER_EMAIL: 't@e',
};
const COMMANDS = ['commit', 'status', 'log', 'diff', 'checkout', 'clone', 'push', 'pull', 'git', 'hg'];

describe('versioning commands on the command line', () => {
  const tmp = tempDir('cloudlets-vcs-cli-');
  afterAll(() => tmp.remove());

  it.each(COMMANDS)('%s --help shows examples', (command) => {
    const res = cli([command, '--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Examples:\n {2}\$ cloudlets /);
  });

  it('commit needs a message; status of an unversioned image says how to start', () => {
    const img = join(tmp.path, 'new');
    mkdirSync(img);
    expect(cli(['commit', img]).code).toBe(2);
    const st = cli(['status', img]);
    expect(st.code).toBe(2);
    expect(st.stderr).toContain('is not versioned yet');
    expect(st.stderr).toContain('hint: start with `cloudlets commit');
  });

  it('commit, status, log --json, and git passthrough with and without --', () => {
    const img = join(tmp.path, 'img');
    mkdirSync(img);
    writeFileSync(join(img, 'motd'), 'hi\n');
    const c = cli(['commit', img, '-m', 'first'], { env: ENV });
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(/committed [0-9a-f]{12}: 1 added/);
    expect(cli(['commit', img, '-m', 'again'], { env: ENV }).stdout).toContain('nothing to commit');
    expect(cli(['status', img]).stdout).toContain('clean: nothing to commit');
    writeFileSync(join(img, 'new'), 'x\n');
    expect(cli(['status', img]).stdout).toContain('A /new');
    const log = JSON.parse(cli(['log', img, '--json']).stdout);
    expect(log).toHaveLength(1);
    expect(log[0].subject).toBe('first');
    const p = cli(['git', img, '--', 'log', '--format=%s']);
    expect(p.code).toBe(0);
    const q = cli(['git', img, 'rev-parse', '--is-inside-work-tree']);
    expect(q.code).toBe(0);
    expect(cli(['git', img, 'no-such-subcommand']).code).toBe(1);
    expect(cli(['checkout', img, 'no-such-rev']).stderr).toContain('unknown revision "no-such-rev"');
  });
});
