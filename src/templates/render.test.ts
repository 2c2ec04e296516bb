import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Configuration } from '../config/index.js';
import { CloudletsError } from '../errors.js';
import type { Manifest } from '../manifest/index.js';
import { ejsBundleSource } from './ejs-bundle.js';
import { encodeFrame } from './frame.js';
import { prestartRenderer, type RenderOptions, renderTemplates } from './index.js';
import { CHILD_SPAWN_OPTIONS, childArguments, permissionFlag, startRenderer } from './renderer.js';

const manifest = {
  name: 'sample',
  args: { type: 'object', properties: { hostname: { type: 'string' } } },
  templates: ['/etc/hostname'],
  persistent: [],
  volatile: [],
  entrypoints: [],
} as Manifest;

const configuration: Configuration = {
  args: { hostname: 'web1', 'not-an-identifier': 'x' },
  dns: { nameservers: ['192.0.2.1', '192.0.2.2'] },
  ip: { interfaces: [] },
};

/** Renders templates given as path → text, with includes from `files`; returns path → text. */
async function render(
  templates: Record<string, string>,
  opts: Partial<RenderOptions> & { files?: Record<string, string> } = {},
): Promise<Record<string, string>> {
  const files = opts.files ?? {};
  const out = await renderTemplates({
    templates: Object.entries(templates).map(([path, text]) => ({ path, source: Buffer.from(text) })),
    readInclude: async (path) => (path in files ? Buffer.from(files[path] as string) : undefined),
    configuration,
    manifest,
    ...opts,
  });
  return Object.fromEntries([...out].map(([path, body]) => [path, body.toString('utf8')]));
}

async function renderError(text: string, opts: Parameters<typeof render>[1] = {}): Promise<CloudletsError> {
  const err = await render({ '/etc/motd': text }, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CloudletsError);
  return err as CloudletsError;
}

describe('renderTemplates', () => {
  it('gives templates args, config and manifest', async () => {
    const out = await render({
      '/etc/hostname': '<%= args.hostname %>\n',
      '/etc/resolv.conf': '<% for (const ns of config.dns.nameservers) { %>nameserver <%= ns %>\n<% } %>',
      '/etc/motd': 'Welcome to <%= manifest.name %>',
    });
    expect(out).toEqual({
      '/etc/hostname': 'web1\n',
      '/etc/resolv.conf': 'nameserver 192.0.2.1\nnameserver 192.0.2.2\n',
      '/etc/motd': 'Welcome to sample',
    });
  });

  it("renders templates of the earlier tool, which used the configuration's keys directly", async () => {
    const out = await render({
      '/etc/x': '<%= hostname %> <%= dns.nameservers[0] %> <%= ip.interfaces.length %>',
    });
    expect(out['/etc/x']).toBe('web1 192.0.2.1 0');
  });

  it('inserts values as they are with both <%= and <%-: configuration files are not HTML', async () => {
    const out = await render(
      { '/etc/x': '<%= args.v %>|<%- args.v %>' },
      { configuration: { args: { v: "<a&b>'" } } },
    );
    expect(out['/etc/x']).toBe("<a&b>'|<a&b>'");
  });

  it('includes files of the image: relative to the template, absolute, nested, with data', async () => {
    const files = {
      '/etc/header': '# <%= hostname %> <%- include("parts/line", { n: 1 }) %>',
      '/etc/parts/line': 'line <%= n %> <%- include("../footer") %>',
      '/etc/footer': 'end',
      '/usr/share/banner': 'banner',
    };
    const reads: string[] = [];
    const out = await render(
      {
        '/etc/motd': '<%- include("header") %>\n<%- include("/usr/share/banner") %>',
        '/etc/issue': '<%- include("./header") %>',
      },
      {
        files,
        readInclude: async (path) => {
          reads.push(path);
          return path in files ? Buffer.from(files[path as keyof typeof files]) : undefined;
        },
      },
    );
    expect(out['/etc/motd']).toBe('# web1 line 1 end\nbanner');
    expect(out['/etc/issue']).toBe('# web1 line 1 end');
    // Each file is read once per call, however many templates include it.
    expect(reads.sort()).toEqual(['/etc/footer', '/etc/header', '/etc/parts/line', '/usr/share/banner']);
  });

  it('names the template and the line of a runtime error', async () => {
    const err = await renderError('a\nb\n<%= foo %>\n');
    expect(err.code).toBe('ETEMPLATE');
    expect(err.where).toBe('/etc/motd');
    expect(err.format()).toBe('/etc/motd: line 3: ReferenceError: foo is not defined');
  });

  it('names the line of a syntax error', async () => {
    const err = await renderError('one\ntwo\n<% if (x { %>\nfour\n');
    expect(err.format()).toMatch(/^\/etc\/motd: line 3: SyntaxError: /);
  });

  it('names the include chain of an error in an included file', async () => {
    const err = await renderError('x\n<%- include("/etc/inc") %>', {
      files: { '/etc/inc': '\n\n<% null.x %>' },
    });
    expect(err.format()).toMatch(
      /^\/etc\/motd: line 2: \/etc\/inc: line 3: TypeError: Cannot read properties of null/,
    );
  });

  it('reports an include that is not in the image', async () => {
    const err = await renderError('<%- include("nothing") %>');
    expect(err.format()).toBe('/etc/motd: line 1: Error: include /etc/nothing: no such file in the image');
  });

  it('stops an include cycle', async () => {
    const err = await renderError('<%- include("/a") %>', {
      files: { '/a': '<%- include("/b") %>', '/b': '<%- include("/a") %>' },
    });
    expect(err.message).toMatch(/nested deeper than 32 levels/);
  });

  it('reports a thrown non-error value', async () => {
    const err = await renderError('<% throw 42 %>');
    expect(err.code).toBe('ETEMPLATE');
    expect(err.where).toBe('/etc/motd');
  });

  it('renders many templates with one renderer, each in its own context', async () => {
    const templates: Record<string, string> = {};
    for (let i = 0; i < 100; i++) templates[`/etc/t${i}`] = `<%= ${i} * 2 %>`;
    const started = performance.now();
    const out = await render(templates);
    expect(Object.keys(out)).toHaveLength(100);
    expect(out['/etc/t42']).toBe('84');
    expect(performance.now() - started).toBeLessThan(20_000);
  });

  it('does nothing for no templates, and rejects a bad time limit', async () => {
    expect(await render({})).toEqual({});
    await expect(render({ '/x': '' }, { timeoutMs: 0 })).rejects.toMatchObject({ code: 'EUSAGE' });
  });

  it('stops at once when aborted mid-render (Ctrl-C), with the reason, not at the time limit', async () => {
    const controller = new AbortController();
    const reason = new CloudletsError('EINTERRUPTED', 'interrupted by SIGTERM');
    const started = Date.now();
    setTimeout(() => controller.abort(reason), 300);
    const err = await render(
      { '/etc/hostname': '<% while (true) {} %>' },
      { timeoutMs: 8_000, signal: controller.signal },
    ).catch((e: unknown) => e);
    expect(err).toBe(reason);
    expect(Date.now() - started).toBeLessThan(3_000);
    // Already aborted: nothing is rendered.
    await expect(render({ '/etc/hostname': 'x' }, { signal: controller.signal })).rejects.toBe(reason);
  });

  it('keeps multi-byte text intact', async () => {
    const out = await render({ '/etc/x': 'héllo <%= "wörld ✓" %>' });
    expect(out['/etc/x']).toBe('héllo wörld ✓');
  });

  it('uses the permission flag of the running Node', () => {
    expect(['--permission', '--experimental-permission']).toContain(permissionFlag());
  });

  it('renders with a child spawned and prepared beforehand, as the command loader does', async () => {
    const child = spawn(process.execPath, childArguments(), CHILD_SPAWN_OPTIONS);
    child.stdin?.write(encodeFrame({ type: 'prepare', ejs: await ejsBundleSource() }));
    prestartRenderer({ child, prepared: true });
    expect(await render({ '/etc/hostname': '<%= args.hostname %>' })).toEqual({ '/etc/hostname': 'web1' });
  });

  it('reports a child taken over that had already stopped, without waiting for a time limit', async () => {
    const child = spawn(process.execPath, ['-e', ''], CHILD_SPAWN_OPTIONS);
    await new Promise((resolve) => child.on('exit', resolve));
    const asked = startRenderer(child).request({ type: 'init', ejs: '', data: '{}' }, 60_000);
    await expect(asked).rejects.toMatchObject({ reason: 'crash' });
  });
});
