import { describe, expect, it } from 'vitest';
import { cli } from './helpers.js';

const COMMANDS = [
  'specs',
  'manifest',
  'validate',
  'validate-args',
  'schema',
  'find',
  'tar',
  'config',
  'init',
];

describe('cloudlets --help', () => {
  it('lists every command', () => {
    const res = cli(['--help']);
    expect(res.code).toBe(0);
    for (const command of COMMANDS) expect(res.stdout).toContain(command);
  });

  it.each(COMMANDS)('shows examples for %s', (command) => {
    const res = cli([command, '--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/Examples:\n {2}\$ cloudlets /);
  });

  it('rejects an unknown command with exit code 2 and no stack trace', () => {
    const res = cli(['frobnicate']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("unknown command 'frobnicate'");
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('accepts validate_args as the earlier tool spelled it', () => {
    const res = cli(['validate_args', '--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('validate-args');
  });
});
