import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, EXAMPLE, tempDir } from './helpers.js';

let tmp: ReturnType<typeof tempDir>;
let image: string;
const read = (path: string) => readFileSync(join(image, path), 'utf8');

beforeEach(() => {
  tmp = tempDir('cloudlets-cli-config-');
  image = join(tmp.path, 'sample.cloudlet');
  cpSync(EXAMPLE, image, { recursive: true, verbatimSymlinks: true });
});
afterEach(() => tmp.remove());

describe('cloudlets config', () => {
  it('says when no configuration is applied', () => {
    const plain = cli(['config', image]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe('');
    expect(plain.stderr).toMatch(/no configuration has been applied/);
    const json = cli(['config', image, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toBeNull();
  });

  it('renders the templates in place, records the configuration and prints it back', () => {
    const res = cli([
      'config',
      image,
      '--config',
      '{"args":{"hostname":"web1"},"dns":{"nameservers":["192.0.2.53"]}}',
    ]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(
      'rendered /etc/hostname\nrendered /etc/hosts\nrendered /etc/resolv.conf\nrendered /etc/motd\n',
    );
    expect(read('/etc/hostname')).toBe('web1\n');
    expect(read('/etc/hosts')).toBe('127.0.0.1\tlocalhost\n127.0.1.1\tweb1\n');
    expect(read('/etc/resolv.conf')).toBe('nameserver 192.0.2.53\n');
    expect(read('/etc/motd')).toMatch(/^Welcome to a cloudlet\.\nThis is sample 1\.0\.0\./);
    expect(read('/.cloudlet/templates/etc/hostname')).toBe(
      readFileSync(join(EXAMPLE, 'etc/hostname'), 'utf8'),
    );

    const shown = cli(['config', image, '--json']);
    expect(shown.code).toBe(0);
    // Defaults filled in by validation are part of what was applied.
    expect(JSON.parse(shown.stdout)).toMatchObject({
      args: { hostname: 'web1', motd: 'Welcome to a cloudlet.' },
      dns: { nameservers: ['192.0.2.53'] },
    });
  });

  it('refuses to configure twice without --force, and configures again with it', () => {
    expect(cli(['config', image, '--config', '{"args":{"hostname":"one"}}']).code).toBe(0);
    const again = cli(['config', image, '--config', '{"args":{"hostname":"two"}}']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already configured/);
    expect(again.stderr).toMatch(/--force/);
    expect(read('/etc/hostname')).toBe('one\n');
    const forced = cli(['config', image, '--config', '{"args":{"hostname":"two"}}', '--force']);
    expect(forced.code).toBe(0);
    expect(read('/etc/hostname')).toBe('two\n');
  });

  it('reads the configuration from a file and from standard input', () => {
    const file = join(tmp.path, 'conf.json');
    writeFileSync(file, '{"args":{"hostname":"from-file"}}');
    expect(cli(['config', image, '--config', `@${file}`]).code).toBe(0);
    expect(read('/etc/hostname')).toBe('from-file\n');
    const piped = cli(['config', image, '--config', '-', '--force'], {
      input: '{"args":{"hostname":"piped"}}',
    });
    expect(piped.code).toBe(0);
    expect(read('/etc/hostname')).toBe('piped\n');
  });

  it('writes nothing for an invalid configuration', () => {
    const res = cli(['config', image, '--config', '{"args":{"hostname":42}}']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/\/args\/hostname/);
    expect(existsSync(join(image, '.cloudlet/applied_config'))).toBe(false);
    expect(read('/etc/hostname')).toBe('<%= hostname %>\n');
  });

  it('names the template and line of a failing template, and writes nothing', () => {
    writeFileSync(join(image, 'etc/motd'), 'fine\n<%= missing.value %>\n');
    const res = cli(['config', image, '--config', '{}']);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe('cloudlets: /etc/motd: line 2: ReferenceError: missing is not defined\n');
    expect(read('/etc/hostname')).toBe('<%= hostname %>\n');
    expect(existsSync(join(image, '.cloudlet/applied_config'))).toBe(false);
  });

  it('stops a template that runs too long', () => {
    writeFileSync(join(image, 'etc/motd'), '<% for (;;) {} %>');
    const res = cli(['config', image, '--config', '{}', '--template-timeout', '0.5']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/\/etc\/motd: did not finish within 0\.5 s/);
  });
});
