/**
 * Every test here is a template trying to escape, and failing. The renderer must stop each attempt
 * without touching the host: no file read or written, no process, no network, no state shared
 * between templates, no run past its time limit, no unbounded memory or output.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Configuration } from '../config/index.js';
import { CloudletsError } from '../errors.js';
import type { Manifest } from '../manifest/index.js';
import { createTemplateContext } from './child.js';
import { type RenderOptions, renderTemplates } from './index.js';
import { childArguments } from './renderer.js';

const manifest = {
  args: { type: 'object', properties: {} },
  templates: [],
  persistent: [],
  volatile: [],
  entrypoints: [],
} as Manifest;

let dir: string;
let marker: string;
let server: Server;
let url: string;
let requests = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cloudlets-escape-'));
  marker = join(dir, 'escaped');
  server = createServer((_req, res) => {
    requests++;
    res.end('reached');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await new Promise((resolve) => server.close(resolve));
});

async function renderOne(
  text: string,
  opts: Partial<RenderOptions> = {},
): Promise<{ output?: string; error?: CloudletsError }> {
  try {
    const out = await renderTemplates({
      templates: [{ path: '/etc/evil', source: Buffer.from(text) }],
      readInclude: async () => undefined,
      configuration: { args: {} },
      manifest,
      timeoutMs: 2000,
      ...opts,
    });
    return { output: out.get('/etc/evil')?.toString('utf8') };
  } catch (err) {
    expect(err).toBeInstanceOf(CloudletsError);
    return { error: err as CloudletsError };
  }
}

/** Each probe is wrapped so one failure does not hide the next; the template prints what it got. */
function probes(list: Record<string, string>): string {
  return Object.entries(list)
    .map(
      ([name, code]) =>
        `<% let ${name}_; try { ${name}_ = String(${code}) } catch { ${name}_ = 'threw' } %>${name}=<%= ${name}_ %>;`,
    )
    .join('\n');
}

const HOST_PROCESS = [
  "this.constructor.constructor('return process')()",
  "(function(){}).constructor('return process')()",
  "(async function(){}).constructor.constructor('return process')()",
  "include.constructor.constructor('return process')()",
  "escapeFn.constructor.constructor('return process')()",
  "arguments.callee.constructor('return process')()",
  'Object.getPrototypeOf(locals)',
  'locals.constructor',
  'global.process',
  'globalThis.process',
  'process',
  "process.binding('fs')",
  "globalThis.constructor.constructor('return process')()",
  "require('fs')",
  'module',
  'Buffer',
  'setTimeout',
  'globalThis.FinalizationRegistry',
  'fetch',
  'new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))',
  // A stack trace shows no host file path (the child's program comes from -e, ejs over stdin).
  `new Error().stack.includes(${JSON.stringify(join(import.meta.dirname, '..', '..'))})`,
];

describe('template isolation', () => {
  it('finds no host object: no process, require, timers, fetch, nor a host Function', async () => {
    const { output, error } = await renderOne(
      probes(Object.fromEntries(HOST_PROCESS.map((c, i) => [`p${i}`, c]))),
    );
    expect(error).toBeUndefined();
    for (const line of (output as string).split('\n')) {
      // Either the probe threw, or it found nothing (undefined/null), or a sandbox function that
      // itself returns undefined for `process`.
      expect(line).toMatch(/^p\d+=(threw|undefined|null|false|\[object Undefined\]|);$/);
    }
  });

  it('cannot reach process.binding or the host through an Error.prepareStackTrace hook', async () => {
    const { output } = await renderOne(
      `<% let found = 'none'; Error.prepareStackTrace = (e, sites) => { for (const s of sites) { try { const f = s.getFunction(); const t = s.getThis(); if (f && f.constructor('return typeof process')() !== 'undefined') found = 'fn'; if (t && t.process) found = 'this' } catch {} } return 'x' }; new Error('probe').stack; %><%= found %>`,
    );
    expect(output).toBe('none');
  });

  it('cannot import a module, and the rejection hands out no host object', async () => {
    const { output, error } = await renderOne(
      `<% import('node:fs').then((fs) => fs.writeFileSync(${JSON.stringify(marker)}, 'x')); %>` +
        `<% (async () => { try { await import('node:child_process') } catch (e) { e.constructor.constructor('return process')().mainModule.require('fs').writeFileSync(${JSON.stringify(marker)}, 'y') } })(); %>` +
        `<% new Function("return import('node:fs')")().catch((e) => e.constructor.constructor('return process')().exit(3)); %>done`,
    );
    expect(error).toBeUndefined();
    expect(output).toBe('done');
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(marker)).toBe(false);
  });

  it('gives import() an error of the sandbox realm, checked in the child with its real flags', () => {
    // Runs createTemplateContext under the renderer's own node flags and lets the rejection settle
    // (a second evaluation), which a single render never does: the error must still be the context's.
    const program = `'use strict'; const vm = require('node:vm'); const make = ${createTemplateContext.toString()};
      const { context, options } = make(vm);
      vm.runInContext("globalThis.seen = 'pending'; import('node:fs').then(() => { seen = 'loaded' }, (e) => { try { seen = e.constructor.constructor('return typeof process')() } catch (x) { seen = 'threw ' + x.name } })", context, options);
      setTimeout(() => { vm.runInContext('0', context, options); process.stdout.write(String(vm.runInContext('seen', context, options))); }, 100);`;
    const flags = childArguments().slice(0, -2);
    const run = (args: string[]) =>
      execFileSync(process.execPath, [...args, '-e', program], { env: {}, encoding: 'utf8' });
    // The context's own Function, where there is no process.
    expect(run(flags)).toBe('undefined');
    // Controls showing what each flag prevents: without the import hook Node's own error leaks the
    // host realm, where code generation is then refused; without both, the host is reached.
    expect(run(flags.filter((f) => f !== '--experimental-vm-modules'))).toBe('threw EvalError');
    const bare = flags.filter(
      (f) => f !== '--experimental-vm-modules' && f !== '--disallow-code-generation-from-strings',
    );
    expect(run(bare)).toBe('object');
  });

  it('runs the renderer process itself under the permission model: no file, process or worker', () => {
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'secret');
    const flags = childArguments().slice(0, -2);
    expect(flags.some((f) => f.startsWith('--allow-'))).toBe(false);
    const program = `const out = [];
      const attempt = (f) => { try { f(); out.push('done') } catch (e) { out.push(e.code || e.name) } };
      attempt(() => require('fs').readFileSync(${JSON.stringify(secret)}));
      attempt(() => require('fs').writeFileSync(${JSON.stringify(marker)}, 'x'));
      attempt(() => require('child_process').execFileSync('/bin/true'));
      attempt(() => new (require('worker_threads').Worker)('0', { eval: true }));
      attempt(() => Function('return 1')());
      process.stdout.write(out.join(' '));`;
    const seen = execFileSync(process.execPath, [...flags, '-e', program], { env: {}, encoding: 'utf8' });
    expect(seen).toBe('ERR_ACCESS_DENIED ERR_ACCESS_DENIED ERR_ACCESS_DENIED ERR_ACCESS_DENIED EvalError');
    expect(existsSync(marker)).toBe(false);
  });

  it('cannot read /etc/passwd by any route', async () => {
    const reads: string[] = [];
    const { output, error } = await renderOne(
      probes({
        a: "require('fs').readFileSync('/etc/passwd', 'utf8')",
        b: "this.constructor.constructor('return process')().mainModule.require('fs').readFileSync('/etc/passwd', 'utf8')",
        c: "fetch('file:///etc/passwd')",
        d: "include('../../../../etc/passwd')",
      }),
      {
        readInclude: async (path) => {
          reads.push(path);
          return undefined;
        },
      },
    );
    expect(error).toBeUndefined();
    expect(output).toBe('a=threw;\nb=threw;\nc=threw;\nd=threw;');
    expect(reads).toEqual([]);
  });

  it('reads /etc/passwd only as an image path, through readInclude', async () => {
    const reads: string[] = [];
    const { error } = await renderOne('<%- include("/etc/passwd") %>', {
      readInclude: async (path) => {
        reads.push(path);
        return undefined;
      },
    });
    expect(reads).toEqual(['/etc/passwd']);
    expect(error?.message).toMatch(/include \/etc\/passwd: no such file in the image/);
  });

  it('refuses an include that climbs above the image root', async () => {
    const { error } = await renderOne('<%- include("../../etc/passwd") %>');
    expect(error?.where).toBe('/etc/evil');
    expect(error?.message).toMatch(/include \.\.\/\.\.\/etc\/passwd: the path leaves the image/);
  });

  it('passes on the error of readInclude for a symlink pointing out of the image', async () => {
    const { error } = await renderOne('<%- include("/etc/link") %>', {
      readInclude: async (path) => {
        throw new CloudletsError('EPATH', 'a symbolic link leads out of the image', { where: path });
      },
    });
    expect(error?.code).toBe('EPATH');
    expect(error?.where).toBe('/etc/evil');
    expect(error?.message).toBe('include /etc/link: a symbolic link leads out of the image');
  });

  it('cannot write a file or start a process', async () => {
    const { output } = await renderOne(
      probes({
        w: `this.constructor.constructor('return process')().mainModule.require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`,
        x: `require('child_process').execSync('touch ${marker}')`,
        y: "process.dlopen({}, '/nonexistent.node')",
        z: 'new Worker("x")',
      }),
    );
    expect(output).toBe('w=threw;\nx=threw;\ny=threw;\nz=threw;');
    expect(existsSync(marker)).toBe(false);
  });

  it('cannot reach the network', async () => {
    const { output } = await renderOne(
      probes({
        f: `fetch(${JSON.stringify(url)})`,
        g: `this.constructor.constructor('return process')().mainModule.require('http').get(${JSON.stringify(url)})`,
        h: `new XMLHttpRequest()`,
      }) + `<% import('node:http').then((http) => http.get(${JSON.stringify(url)})) %>`,
    );
    expect(output).toBe('f=threw;\ng=threw;\nh=threw;');
    await new Promise((r) => setTimeout(r, 300));
    expect(requests).toBe(0);
  });

  it('stops an endless loop at the time limit', async () => {
    const started = performance.now();
    const { error } = await renderOne('<% while (true) {} %>', { timeoutMs: 500 });
    expect(error?.format()).toBe(
      '/etc/evil: did not finish within 0.5 s\nhint: a template runs with a time limit (--template-timeout)',
    );
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('stops an endless promise loop', async () => {
    for (const text of [
      '<% (function loop() { Promise.resolve().then(loop) })() %>',
      '<% (async () => { for (;;) await null })() %>',
    ]) {
      const { error } = await renderOne(text, { timeoutMs: 500 });
      expect(error?.message).toBe('did not finish within 0.5 s');
    }
  });

  it("kills the renderer from outside when a template hangs the vm's own time-limit handling", async () => {
    // Accessors on the context's Error.prototype run while Node builds its timeout error, outside any
    // vm time limit: only the parent's watchdog (limit + grace) ends this one.
    const { error } = await renderOne(
      "<% for (const k of ['code', 'message', 'stack']) Object.defineProperty(Error.prototype, k, { set() { for (;;) {} }, get() { for (;;) {} } }); for (;;) {} %>",
      { timeoutMs: 500 },
    );
    expect(error?.format()).toMatch(/^\/etc\/evil: did not finish within 0\.5 s/);
  }, 20_000);

  it('limits the time over all include rounds of one template', async () => {
    // Every include round renders again from the start: the time spent adds up.
    const files: Record<string, string> = {};
    for (let i = 0; i < 20; i++) files[`/i${i}`] = 'x';
    const text = `<% const t = Date.now(); while (Date.now() - t < 100) {} %>${Object.keys(files)
      .map((p) => `<%- include("${p}") %>`)
      .join('')}`;
    const { error } = await renderOne(text, {
      timeoutMs: 1000,
      readInclude: async (p) => Buffer.from(files[p] ?? ''),
    });
    expect(error?.message).toBe('did not finish within 1 s');
  });

  it('bounds memory: a huge string fails, and exhausting the heap names the template', async () => {
    const big = await renderOne("<%= 'x'.repeat(2 ** 30) %>");
    expect(big.error?.message).toMatch(/Invalid string length/);
    const oom = await renderOne('<% const a = []; for (;;) a.push(new Array(1e6).fill(1.5)) %>', {
      timeoutMs: 20_000,
    });
    expect(oom.error?.where).toBe('/etc/evil');
    expect(oom.error?.message).toMatch(/ran out of memory/);
  }, 30_000);

  it('has no binary buffers, whose memory the heap limit would not count', async () => {
    const { output } = await renderOne(
      probes({
        a: 'new ArrayBuffer(2 ** 30)',
        b: 'new Uint8Array(2 ** 30)',
        c: 'new Float64Array(2 ** 27)',
        d: 'new SharedArrayBuffer(2 ** 30)',
        e: 'new WebAssembly.Memory({ initial: 65536 })',
        f: 'Atomics.wait',
      }),
    );
    expect(output).toBe('a=threw;\nb=threw;\nc=threw;\nd=threw;\ne=threw;\nf=threw;');
  });

  it('bounds the output of a template', async () => {
    const { error } = await renderOne("<%- 'x'.repeat(17 * 1024 * 1024) %>");
    expect(error?.message).toMatch(/output is larger than 16 MiB/);
  });

  it('gives no template the state of another', async () => {
    const out = await renderTemplates({
      templates: [
        {
          path: '/a',
          source: Buffer.from(
            "<% globalThis.leak = 'a'; Object.prototype.polluted = 'a'; JSON.parse = () => 'a'; Array.prototype.join = () => 'a' %>a",
          ),
        },
        {
          path: '/b',
          source: Buffer.from(
            '<%= typeof leak %> <%= typeof ({}).polluted %> <%= JSON.parse("1") %> <%= [1, 2].join("+") %>',
          ),
        },
      ],
      readInclude: async () => undefined,
      configuration: { args: {} },
      manifest,
    });
    expect(out.get('/b')?.toString()).toBe('undefined undefined 1 1+2');
  });

  it('takes no options from the configuration, and __proto__ keys pollute nothing', async () => {
    const configuration = JSON.parse(`{
      "args": {"__proto__": {"polluted": "args"}, "escapeFn": "x", "__append": "x", "hostname": "h"},
      "__proto__": {"polluted": "config"},
      "constructor": {"prototype": {"polluted": "ctor"}},
      "settings": {"view options": {"client": true, "escapeFunction": "1;throw new Error('ran')", "outputFunctionName": "x;throw new Error('ran');//"}},
      "outputFunctionName": "x;throw new Error('ran');//",
      "localsName": "x;throw 1",
      "destructuredLocals": ["x;throw 1"],
      "escape": "nope",
      "client": true,
      "delimiter": "?"
    }`) as Configuration;
    const { output, error } = await renderOne(
      '<%= hostname %> <%= typeof polluted %> <%= typeof ({}).polluted %> <%= "<&>" %> <%= typeof args.__proto__ %> <?= 1 ?>',
      { configuration },
    );
    expect(error).toBeUndefined();
    expect(output).toBe('h undefined undefined <&> object <?= 1 ?>');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
