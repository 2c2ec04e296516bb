// The manifest and configuration commands, run as a user runs them: the built binary on temp images.
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, EXAMPLE, tempDir } from './helpers.js';

const SCHEMA = join(import.meta.dirname, '../schema/manifest.schema.json');

let tmp: { path: string; remove: () => void };
let n = 0;
/** A fresh image directory holding `manifest` (a value, raw text, or a directory when `dir`). */
function image(manifest: unknown, opts: { raw?: boolean; dir?: boolean } = {}): string {
  const root = join(tmp.path, `img${n++}`);
  mkdirSync(join(root, '.cloudlet'), { recursive: true });
  mkdirSync(join(root, 'etc'));
  writeFileSync(join(root, 'etc/hostname'), '<%= args.hostname %>\n');
  const path = join(root, '.cloudlet/manifest');
  if (opts.dir) mkdirSync(path);
  else writeFileSync(path, opts.raw ? String(manifest) : JSON.stringify(manifest));
  return root;
}
const HOSTNAME = { args: { hostname: { type: 'string', default: 'noname' } }, templates: ['/etc/hostname'] };

beforeAll(() => {
  tmp = tempDir('cloudlets-cli-manifest-');
});
afterAll(() => tmp.remove());

describe('cloudlets specs', () => {
  it('prints the committed JSON Schema', () => {
    const res = cli(['specs']);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(readFileSync(SCHEMA, 'utf8'));
    expect(JSON.parse(res.stdout).$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  });
});

describe('cloudlets manifest', () => {
  it('prints the manifest with defaults filled in and args expanded', () => {
    const res = cli([
      'manifest',
      image({ arch: 'i386', volatile: ['/tmp/.+'], args: HOSTNAME.args }),
      '--json',
    ]);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({
      arch: 'i386',
      volatile: ['/tmp/.+'],
      args: { type: 'object', properties: { hostname: { type: 'string', default: 'noname' } } },
      templates: [],
      persistent: [],
      entrypoints: [],
    });
    expect(res.stdout).toMatch(/^\{\n {2}"arch"/);
  });

  it('reads the example image', () => {
    const res = cli(['manifest', EXAMPLE]);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).templates).toContain('/etc/hostname');
  });

  it.each([
    [{ templates: ['/a', '/b', 3] }, '.cloudlet/manifest: /templates/2: must be a string'],
    [{ persistent: ['/var/../../etc'] }, '.cloudlet/manifest: /persistent/0: must be an absolute image path'],
    [{ volatile: ['/tmp/(+'] }, '.cloudlet/manifest: /volatile/0: invalid regular expression'],
    ['{"arch": "i386",\n "volatile": [}', '.cloudlet/manifest: invalid JSON at line 2, column 15'],
    [
      '{"args": {"__proto__": {"x": {}}}}',
      '.cloudlet/manifest: /args/__proto__: the key "__proto__" is not allowed',
    ],
    [
      `{"x": ${'['.repeat(200000)}${']'.repeat(200000)}}`,
      '.cloudlet/manifest: invalid JSON at line 1, column 70: nesting',
    ],
  ])('refuses %s with a clear error and exit 1', (manifest, message) => {
    const res = cli(['manifest', image(manifest, { raw: typeof manifest === 'string' })]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr.startsWith(`cloudlets: ${message}`)).toBe(true);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a manifest that is a directory, and hints when there is none', () => {
    const dir = cli(['manifest', image(null, { dir: true })]);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toMatch(/^cloudlets: \.cloudlet\/manifest: /);
    const bare = join(tmp.path, 'bare');
    mkdirSync(bare);
    const missing = cli(['manifest', bare]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/hint: .*cloudlets init.*--manifest/);
  });

  it('reads an off-band manifest with the global --manifest', () => {
    const file = join(tmp.path, 'offband.json');
    writeFileSync(file, JSON.stringify({ arch: 'aarch64' }));
    const bare = join(tmp.path, 'bare-offband');
    mkdirSync(bare);
    const res = cli(['--manifest', file, 'manifest', bare]);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout).arch).toBe('aarch64');
    writeFileSync(file, '{"templates": [true]}');
    expect(cli(['manifest', bare, '--manifest', file]).stderr).toBe(
      `cloudlets: ${file}: /templates/0: must be a string\n`,
    );
  });

  it('warns about unknown top-level fields; validate --strict refuses them', () => {
    const img = image({ ...HOSTNAME, layers: ['base'] });
    const res = cli(['manifest', img]);
    expect(res.code).toBe(0);
    expect(res.stderr).toBe(
      'warning: .cloudlet/manifest: /layers: unknown field, ignored (a newer cloudlets may know it)\n',
    );
    const strict = cli(['validate', img, '--strict']);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toBe(
      'cloudlets: .cloudlet/manifest: /layers: unknown field (refused in strict mode)\n',
    );
  });
});

describe('cloudlets validate', () => {
  it('fills defaults when values are missing, and not when given', () => {
    const img = image(HOSTNAME);
    const config = { dns: { nameservers: [] }, ip: { interfaces: [] }, args: {} };
    const res = cli(['validate', img, '--config', JSON.stringify(config)]);
    expect(res.code).toBe(0);
    expect(JSON.parse(res.stdout)).toEqual({ ...config, args: { hostname: 'noname' } });
    const given = cli(['validate', img, '-c', '{"args": {"hostname": "web1"}}', '--json']);
    expect(JSON.parse(given.stdout)).toEqual({ args: { hostname: 'web1' } });
    expect(JSON.parse(cli(['validate', img]).stdout)).toEqual({ args: { hostname: 'noname' } });
  });

  it('reads @FILE and standard input', () => {
    const img = image(HOSTNAME);
    const file = join(tmp.path, 'config.json');
    writeFileSync(file, '{"args": {"hostname": "from-file"}}');
    expect(JSON.parse(cli(['validate', img, '--config', `@${file}`]).stdout).args.hostname).toBe('from-file');
    const stdin = cli(['validate', img, '--config', '-'], { input: '{"args": {"hostname": "from-stdin"}}' });
    expect(JSON.parse(stdin.stdout).args.hostname).toBe('from-stdin');
    writeFileSync(file, '{"args": {"hostname": 7}}');
    expect(cli(['validate', img, '--config', `@${file}`]).stderr).toBe(
      `cloudlets: ${file}: /args/hostname: must be a string\n`,
    );
  });

  it.each([
    ['{"args": {"hostname": 1}}', 'cloudlets: configuration: /args/hostname: must be a string\n'],
    [
      '{"args": {"hostname": "x",}}',
      'cloudlets: configuration: invalid JSON at line 1, column 27: unexpected "}"',
    ],
    ['{"dns": {"constructor": {"prototype": {}}}}', 'cloudlets: configuration: /dns/constructor: the key'],
    [
      `${'['.repeat(100)}${']'.repeat(100)}`,
      'cloudlets: configuration: invalid JSON at line 1, column 65: nesting',
    ],
  ])('refuses %s', (config, message) => {
    const res = cli(['validate', image(HOSTNAME), '--config', config]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr.startsWith(message)).toBe(true);
  });
});

describe('cloudlets validate-args and schema', () => {
  it('validates only the arguments, also as validate_args', () => {
    const img = image(HOSTNAME);
    expect(JSON.parse(cli(['validate-args', img, '{}']).stdout)).toEqual({ hostname: 'noname' });
    expect(JSON.parse(cli(['validate_args', img, '{"hostname": "h"}', '--json']).stdout)).toEqual({
      hostname: 'h',
    });
    const bad = cli(['validate-args', img, '{"hostname": false}']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('cloudlets: arguments: /hostname: must be a string\n');
  });

  it("prints the image's configuration schema", () => {
    const res = cli(['schema', image(HOSTNAME)]);
    expect(res.code).toBe(0);
    const schema = JSON.parse(res.stdout);
    expect(schema.properties.args.properties.hostname).toEqual({ type: 'string', default: 'noname' });
  });
});

describe('cloudlets init', () => {
  function rootfs(): string {
    const root = join(tmp.path, `rootfs${n++}`);
    const elf = Buffer.alloc(64);
    elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
    elf.writeUInt16LE(62, 18);
    const files: Record<string, Buffer | string> = {
      'sbin/init': elf,
      'boot/vmlinuz-6.1.0-13-amd64': 'kernel',
      'boot/initrd.img-6.1.0-13-amd64': 'initrd',
      'tmp/.keep': '',
      'var/log/.keep': '',
    };
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    chmodSync(join(root, 'sbin/init'), 0o755);
    return root;
  }

  it('writes a manifest the other commands accept, and says what it detected and why', () => {
    const root = rootfs();
    const res = cli(['init', root]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^kernel +\/boot\/vmlinuz-6\.1\.0-13-amd64 +\(matches \/boot\/vmlinuz-\*/m);
    expect(res.stdout).toMatch(
      /^arch +\/sbin\/init +\(ELF header: e_machine 62, 64-bit little-endian = x86_64\)/m,
    );
    expect(res.stdout).toContain(`wrote ${join(root, '.cloudlet/manifest')}`);
    const manifest = JSON.parse(cli(['manifest', root]).stdout);
    expect(manifest).toMatchObject({ arch: 'x86_64', volatile: ['/tmp/.+'], persistent: ['/var/log'] });
    expect(manifest.entrypoints[0]).toEqual({
      type: 'kernel',
      path: '/boot/vmlinuz-6.1.0-13-amd64',
      initrd: '/boot/initrd.img-6.1.0-13-amd64',
      cmdline: 'console=tty0 console=ttyS0',
    });
    expect(readdirSync(join(root, '.cloudlet'))).toEqual(['manifest']);
  });

  it('refuses to overwrite without --force; --dry-run --json writes nothing', () => {
    const root = rootfs();
    mkdirSync(join(root, '.cloudlet'));
    writeFileSync(join(root, '.cloudlet/manifest'), '{}');
    const refused = cli(['init', root]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/a manifest exists already\nhint: use --force/);
    const dry = cli(['init', root, '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    const out = JSON.parse(dry.stdout);
    expect(out.written).toBe(false);
    expect(out.manifest.arch).toBe('x86_64');
    expect(out.detected).toContainEqual({
      what: 'persistent',
      path: '/var/log',
      why: '/var/log exists: logs',
    });
    expect(readFileSync(join(root, '.cloudlet/manifest'), 'utf8')).toBe('{}');
    expect(cli(['init', root, '--force']).code).toBe(0);
    expect(JSON.parse(readFileSync(join(root, '.cloudlet/manifest'), 'utf8')).arch).toBe('x86_64');
  });
});
