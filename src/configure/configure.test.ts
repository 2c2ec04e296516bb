import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Configuration } from '../config/index.js';
import { CloudletsError } from '../errors.js';
import type { Manifest } from '../manifest/index.js';
import { configureImage, readAppliedConfig } from './index.js';

const isRoot = process.getuid?.() === 0;

function manifest(templates: string[]): Manifest {
  return {
    args: { type: 'object', properties: { hostname: { type: 'string' } } },
    templates,
    persistent: [],
    volatile: [],
    entrypoints: [],
  } as Manifest;
}

const config = (hostname: string): Configuration => ({
  args: { hostname },
  dns: { nameservers: ['192.0.2.53'] },
});

let tmp: string;
let image: string;

/** Writes an inline file tree under the image root. */
function tree(files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(image, path)), { recursive: true });
    writeFileSync(join(image, path), text);
  }
}
const read = (path: string) => readFileSync(join(image, path), 'utf8');

beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cloudlets-configure-'));
  image = join(tmp, 'image');
  mkdirSync(image);
  tree({
    '/.cloudlet/manifest': '{}',
    '/etc/hostname': '<%= hostname %>\n',
    '/etc/resolv.conf': '<% for (const ns of dns.nameservers) { %>nameserver <%= ns %>\n<% } %>',
    '/etc/motd': 'static',
  });
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

async function failure(p: Promise<unknown>): Promise<CloudletsError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CloudletsError);
  return err as CloudletsError;
}

describe('configureImage', () => {
  it('renders templates in place, keeps their pristine text and records the configuration', async () => {
    chmodSync(join(image, '/etc/hostname'), 0o640);
    const result = await configureImage(image, {
      configuration: config('web1'),
      manifest: manifest(['/etc/hostname', '/etc/resolv.conf']),
    });
    expect(result).toEqual({
      rendered: ['/etc/hostname', '/etc/resolv.conf'],
      saved: ['/etc/hostname', '/etc/resolv.conf'],
      missing: [],
    });
    expect(read('/etc/hostname')).toBe('web1\n');
    expect(read('/etc/resolv.conf')).toBe('nameserver 192.0.2.53\n');
    expect(read('/etc/motd')).toBe('static');
    expect(statSync(join(image, '/etc/hostname')).mode & 0o7777).toBe(0o640);
    expect(read('/.cloudlet/templates/etc/hostname')).toBe('<%= hostname %>\n');
    expect(JSON.parse(read('/.cloudlet/applied_config'))).toEqual(config('web1'));
    expect(statSync(join(image, '/.cloudlet/applied_config')).mode & 0o777).toBe(0o600);
    expect(await readAppliedConfig(image)).toEqual(config('web1'));
    // No temporary file is left behind.
    expect(readdirSync(join(image, 'etc')).sort()).toEqual(['hostname', 'motd', 'resolv.conf']);
  });

  it('reports no applied configuration on a fresh image', async () => {
    expect(await readAppliedConfig(image)).toBeUndefined();
  });

  it('refuses an image already configured, and configures it again from the pristine text with force', async () => {
    const m = manifest(['/etc/hostname']);
    await configureImage(image, { configuration: config('web1'), manifest: m });
    const err = await failure(configureImage(image, { configuration: config('web2'), manifest: m }));
    expect(err.code).toBe('EEXIST');
    expect(err.hint).toMatch(/--force/);
    expect(read('/etc/hostname')).toBe('web1\n');

    const again = await configureImage(image, { configuration: config('web2'), manifest: m, force: true });
    expect(again.saved).toEqual([]);
    expect(read('/etc/hostname')).toBe('web2\n');
    expect(read('/.cloudlet/templates/etc/hostname')).toBe('<%= hostname %>\n');
    expect((await readAppliedConfig(image))?.args).toEqual({ hostname: 'web2' });
  });

  it('leaves the image untouched when a template fails', async () => {
    tree({ '/etc/broken': 'a\n<%= nope %>' });
    const err = await failure(
      configureImage(image, {
        configuration: config('web1'),
        manifest: manifest(['/etc/hostname', '/etc/broken']),
      }),
    );
    expect(err.format()).toBe('/etc/broken: line 2: ReferenceError: nope is not defined');
    expect(read('/etc/hostname')).toBe('<%= hostname %>\n');
    expect(existsSync(join(image, '/.cloudlet/applied_config'))).toBe(false);
    expect(existsSync(join(image, '/.cloudlet/templates'))).toBe(false);
  });

  it('skips a listed template that is not in the image', async () => {
    const result = await configureImage(image, {
      configuration: config('h'),
      manifest: manifest(['/etc/hostname', '/etc/none']),
    });
    expect(result.missing).toEqual(['/etc/none']);
    expect(result.rendered).toEqual(['/etc/hostname']);
  });

  it('reads an included template in its pristine form', async () => {
    tree({ '/etc/issue': 'host <%- include("hostname") %>' });
    const m = manifest(['/etc/hostname', '/etc/issue']);
    await configureImage(image, { configuration: config('a'), manifest: m });
    await configureImage(image, { configuration: config('b'), manifest: m, force: true });
    expect(read('/etc/issue')).toBe('host b\n');
  });

  it('never writes through a symbolic link out of the image', async () => {
    const outside = join(tmp, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'hostname'), 'host file');
    // The template itself a link out of the image.
    rmSync(join(image, '/etc/hostname'));
    symlinkSync(join(outside, 'hostname'), join(image, '/etc/hostname'));
    let err = await failure(
      configureImage(image, { configuration: config('x'), manifest: manifest(['/etc/hostname']) }),
    );
    expect(err.code).toBe('EPATH');
    expect(err.where).toBe('/etc/hostname');
    // A directory on the way a link out of the image.
    symlinkSync(outside, join(image, 'srv'));
    err = await failure(
      configureImage(image, { configuration: config('x'), manifest: manifest(['/srv/hostname']) }),
    );
    expect(err.code).toBe('EPATH');
    expect(err.message).toMatch(/\/srv is a symbolic link/);
    // /.cloudlet a link out of the image: the record would land outside.
    rmSync(join(image, '.cloudlet'), { recursive: true });
    symlinkSync(outside, join(image, '.cloudlet'));
    err = await failure(
      configureImage(image, { configuration: config('x'), manifest: manifest(['/etc/motd']) }),
    );
    expect(err.code).toBe('EPATH');
    expect(readdirSync(outside)).toEqual(['hostname']);
    expect(readFileSync(join(outside, 'hostname'), 'utf8')).toBe('host file');
  });

  it('refuses an include through a symbolic link out of the image', async () => {
    const outside = join(tmp, 'secret');
    writeFileSync(outside, 'secret');
    symlinkSync('../../secret', join(image, 'etc/link'));
    tree({ '/etc/issue': '<%- include("link") %>' });
    const err = await failure(
      configureImage(image, { configuration: config('x'), manifest: manifest(['/etc/issue']) }),
    );
    expect(err.where).toBe('/etc/issue');
    expect(err.message).toMatch(/^include \/etc\/link: /);
    expect(read('/etc/issue')).toBe('<%- include("link") %>');
  });

  it('refuses a template path that is not a plain image path', async () => {
    const err = await failure(
      configureImage(image, { configuration: config('x'), manifest: manifest(['/etc/../../x']) }),
    );
    expect(err.code).toBe('EPATH');
  });

  it.skipIf(!isRoot)('keeps owner and special mode bits (needs root)', async () => {
    chownSync(join(image, '/etc/hostname'), 1234, 5678);
    chmodSync(join(image, '/etc/hostname'), 0o4750);
    await configureImage(image, { configuration: config('web1'), manifest: manifest(['/etc/hostname']) });
    const st = statSync(join(image, '/etc/hostname'));
    expect([st.uid, st.gid, st.mode & 0o7777]).toEqual([1234, 5678, 0o4750]);
    const copy = statSync(join(image, '/.cloudlet/templates/etc/hostname'));
    expect([copy.uid, copy.gid]).toEqual([1234, 5678]);
  });
});
