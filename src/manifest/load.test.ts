import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudletsError } from '../errors.js';
import type { ImageSource } from '../stream/entry.js';
import { kernelSatisfies, loadManifest, MANIFEST_PATH } from './index.js';

/** An image holding only the given files; a `null` value stands for a directory at that path. */
function memorySource(files: Record<string, string | Buffer | null>): ImageSource {
  return {
    description: 'memory image',
    async *entries() {},
    async readFile(path) {
      const content = files[path];
      if (content === null) throw new CloudletsError('EPATH', 'not a regular file', { where: path });
      return content === undefined ? undefined : Buffer.from(content);
    },
  };
}
const withManifest = (manifest: unknown) => memorySource({ [MANIFEST_PATH]: JSON.stringify(manifest) });

async function loadError(source: ImageSource, opts = {}): Promise<CloudletsError> {
  try {
    await loadManifest(source, opts);
  } catch (err) {
    if (err instanceof CloudletsError) return err;
    throw err;
  }
  throw new Error('expected loadManifest to fail');
}

const SAMPLE = {
  author: 'Solomon Hykes <solomon.hykes@dotcloud.com>',
  description: 'Debian (Lenny/5.0) base system for i386',
  arch: 'i386',
  name: 'debian-5.0',
  args: { hostname: { type: 'string', default: 'debian-host' } },
  templates: ['/etc/hostname'],
  persistent: ['/var/log'],
  volatile: [
    '/etc/rc6.d/S00vzreboot$',
    '/var/log/(?!apt).+',
    '/var/lib/apt/lists/(?!partial).+',
    '/usr/.+\\.pyc',
  ],
};

describe('loadManifest', () => {
  it("loads the earlier tool's sample manifest, expanding the args shorthand", async () => {
    const { manifest, where, warnings } = await loadManifest(withManifest(SAMPLE));
    expect(where).toBe('.cloudlet/manifest');
    expect(warnings).toEqual([]);
    expect(manifest).toEqual({
      ...SAMPLE,
      args: { type: 'object', properties: { hostname: { type: 'string', default: 'debian-host' } } },
      entrypoints: [],
    });
  });

  it('fills defaults: a manifest with only arch and volatile is valid', async () => {
    const { manifest } = await loadManifest(withManifest({ arch: 'i386', volatile: ['/tmp/.+'] }));
    expect(manifest).toEqual({
      arch: 'i386',
      volatile: ['/tmp/.+'],
      templates: [],
      persistent: [],
      entrypoints: [],
      args: { type: 'object', properties: {} },
    });
  });

  it('accepts a full object schema for args as is', async () => {
    const args = {
      type: 'object',
      properties: { port: { type: 'integer', default: 80 } },
      required: ['port'],
    };
    const { manifest } = await loadManifest(withManifest({ args }));
    expect(manifest.args).toEqual(args);
  });

  it('normalises image paths', async () => {
    const { manifest } = await loadManifest(withManifest({ templates: ['/etc//hostname', '/etc/./hosts/'] }));
    expect(manifest.templates).toEqual(['/etc/hostname', '/etc/hosts']);
  });

  it('names the pointer and the expectation on a wrong type', async () => {
    const err = await loadError(withManifest({ templates: ['/a', '/b', 3] }));
    expect(err.code).toBe('EMANIFEST');
    expect(err.format()).toBe('.cloudlet/manifest: /templates/2: must be a string');
  });

  it.each([
    [{ templates: 'etc/hostname' }, '/templates: must be an array'],
    [{ persistent: ['var/log'] }, '/persistent/0: must be an absolute image path'],
    [{ templates: ['/etc/../../../root/.ssh/id_rsa'] }, '/templates/0: must be an absolute image path'],
    [{ templates: ['/etc/a\u0000b'] }, '/templates/0: must be an absolute image path'],
    [{ arch: ['x86_64'] }, '/arch: must be a string'],
    [[], 'must be an object'],
    [
      { entrypoints: [{ type: 'bios', path: '/x' }] },
      '/entrypoints/0/type: must be one of "kernel", "init", "chroot"',
    ],
    [{ entrypoints: [{ type: 'init' }] }, '/entrypoints/0: missing required field "path"'],
    [{ entrypoints: [{ type: 'init', path: '/sbin/init', cmd: [] }] }, '/entrypoints/0: unknown field "cmd"'],
    [
      { entrypoints: [{ type: 'init', path: '/sbin/init', cmdline: 'x' }] },
      '/entrypoints/0/cmdline: only a kernel',
    ],
    [
      { entrypoints: [{ type: 'kernel', path: '/vmlinuz', command: ['x'] }] },
      '/entrypoints/0/command: a kernel',
    ],
    [
      { entrypoints: [{ type: 'init', path: '/sbin/init', requires: { kernel: 'two point six' } }] },
      '/entrypoints/0/requires/kernel: must be a version range',
    ],
    [
      { entrypoints: [{ type: 'init', path: '/sbin/init', requires: { arch: 64 } }] },
      '/entrypoints/0/requires/arch: must be a string or an array',
    ],
    [
      { entrypoints: [{ type: 'init', path: '/sbin/init', requires: { arch: [64] } }] },
      '/entrypoints/0/requires/arch/0: must be a string',
    ],
    [{ args: { hostname: 'string' } }, '/args/hostname: must be a schema object'],
    [{ args: { type: 'string' } }, '/args/type: must be a schema object'],
    [
      { args: { name: { type: 'string', pattern: '^(a+)+$' } } },
      '/args/name/pattern: the pattern "^(a+)+$" is refused',
    ],
    [{ args: { name: { type: 'strin' } } }, '/args: not a usable JSON Schema'],
    [{ args: { a: { $ref: 'https://example.org/schema.json' } } }, '/args: not a usable JSON Schema'],
  ])('refuses %j: %s', async (manifest, message) => {
    const err = await loadError(withManifest(manifest));
    expect(err.code).toBe('EMANIFEST');
    expect(err.where).toBe('.cloudlet/manifest');
    expect(err.message.startsWith(message)).toBe(true);
  });

  it.each([
    [['/tmp/(unclosed'], '/volatile/0: invalid regular expression'],
    [['/tmp/.+', '/var/(a+)+$'], '/volatile/1: pattern may backtrack catastrophically'],
  ])('refuses volatile patterns %j when loading: %s', async (volatile, message) => {
    const err = await loadError(withManifest({ volatile }));
    expect(err.code).toBe('EPATTERN');
    expect(err.where).toBe('.cloudlet/manifest');
    expect(err.message.startsWith(message)).toBe(true);
  });

  it('refuses __proto__, constructor and prototype keys without polluting prototypes', async () => {
    const text = '{"args": {"__proto__": {"polluted": {"type": "string"}}}}';
    const err = await loadError(memorySource({ [MANIFEST_PATH]: text }));
    expect(err.message).toMatch(/^\/args\/__proto__: the key "__proto__" is not allowed/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const err2 = await loadError(withManifest({ volatile: [], x: { constructor: 1 } }));
    expect(err2.message).toMatch(/^\/x\/constructor:/);
  });

  it('says line and column for invalid JSON', async () => {
    const err = await loadError(memorySource({ [MANIFEST_PATH]: '{\n  "arch": "i386",\n}' }));
    expect(err.format()).toMatch(/^\.cloudlet\/manifest: invalid JSON at line 3, column 1:/);
  });

  it('refuses absurd nesting without a stack overflow', async () => {
    const text = `{"x": ${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    expect((await loadError(memorySource({ [MANIFEST_PATH]: text }))).message).toMatch(
      /nesting deeper than 64/,
    );
  });

  it('refuses a manifest that is a directory, and hints when it is missing', async () => {
    const dir = await loadError(memorySource({ [MANIFEST_PATH]: null }));
    expect(dir.format()).toMatch(/^\.cloudlet\/manifest: cannot be read: not a regular file/);
    const missing = await loadError(memorySource({}));
    expect(missing.message).toBe('no manifest in memory image');
    expect(missing.hint).toMatch(/cloudlets init.*--manifest/);
  });

  it('refuses text that is not UTF-8', async () => {
    const err = await loadError(memorySource({ [MANIFEST_PATH]: Buffer.from([0x7b, 0xff, 0x7d]) }));
    expect(err.message).toBe('is not valid UTF-8 text');
  });

  it('warns about unknown top-level fields, or refuses them when strict', async () => {
    const source = withManifest({ arch: 'x86_64', layers: ['base'] });
    const { manifest, warnings } = await loadManifest(source);
    expect(warnings).toEqual([
      '.cloudlet/manifest: /layers: unknown field, ignored (a newer cloudlets may know it)',
    ]);
    expect(manifest.layers).toEqual(['base']);
    const err = await loadError(source, { strict: true });
    expect(err.format()).toBe('.cloudlet/manifest: /layers: unknown field (refused in strict mode)');
  });

  it('accepts entry points of every type', async () => {
    const entrypoints = [
      {
        type: 'kernel',
        path: '/boot/vmlinuz-6.1.0-13-amd64',
        initrd: '/boot/initrd.img-6.1.0-13-amd64',
        cmdline: 'console=ttyS0',
        requires: { arch: ['x86_64'] },
      },
      { type: 'init', path: '/sbin/init', requires: { kernel: '>=2.6.32' } },
      { type: 'chroot', path: '/bin/sh', command: ['/bin/sh', '-l'], requires: { commands: ['mount -a'] } },
    ];
    const { manifest } = await loadManifest(withManifest({ entrypoints }));
    expect(manifest.entrypoints).toEqual(entrypoints);
  });

  describe('off-band manifest', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cloudlets-manifest-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('reads the host file instead of the image and names it in errors', async () => {
      const file = join(dir, 'm.json');
      await writeFile(file, JSON.stringify({ arch: 'aarch64' }));
      const { manifest, where } = await loadManifest(withManifest({ arch: 'i386' }), { manifestFile: file });
      expect(manifest.arch).toBe('aarch64');
      expect(where).toBe(file);
      await writeFile(file, '{"templates": [1]}');
      expect((await loadError(memorySource({}), { manifestFile: file })).format()).toBe(
        `${file}: /templates/0: must be a string`,
      );
    });

    it('refuses a directory and a missing file', async () => {
      expect((await loadError(memorySource({}), { manifestFile: dir })).message).toBe(
        'is a directory, not a file',
      );
      const missing = await loadError(memorySource({}), { manifestFile: join(dir, 'nope') });
      expect(missing.message).toBe('no such file');
    });
  });
});

describe('kernelSatisfies', () => {
  it.each([
    ['5.10.0-28-amd64', '>=2.6.32', true],
    ['2.6.18-xen', '>=2.6.32', false],
    ['6.1.0', '>=5.4 <7', true],
    ['garbage', '>=1', false],
  ])('%s against %s → %s', (version, range, ok) => {
    expect(kernelSatisfies(version, range)).toBe(ok);
  });
});
