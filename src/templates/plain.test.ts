import * as childProcess from 'node:child_process';
import vm from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Configuration } from '../config/index.js';
import type { Manifest } from '../manifest/index.js';
import { createTemplateContext } from './child.js';
import { ejsBundleSource } from './ejs-bundle.js';
import { renderTemplates } from './index.js';
import { plainScope, renderPlain } from './plain.js';
import { sandboxBoot } from './sandbox.js';

// Every process the renderer would start goes through here, counted.
vi.mock('node:child_process', async (original) => {
  const actual = await original<typeof import('node:child_process')>();
  return { ...actual, spawn: vi.fn(actual.spawn) };
});
afterEach(() => vi.mocked(childProcess.spawn).mockClear());

const manifest = {
  name: 'sample',
  templates: [],
  persistent: [],
  volatile: [],
  entrypoints: [],
} as unknown as Manifest;
const configuration = {
  args: {
    hostname: 'web1',
    count: 3,
    ratio: 0.5,
    big: 1e21,
    flag: true,
    none: null,
    html: '<a & "b\'>',
    $odd: 'dollar',
    host_: 'underscore',
    nested: { deeper: { name: 'deep' } },
    list: ['a', 'b'],
    __proto__: 'own',
  },
  dns: { nameservers: ['192.0.2.1', '192.0.2.2'] },
} as unknown as Configuration;
const data = JSON.stringify({ configuration, manifest });

/** The sandbox's own rendering (./sandbox.ts, in a template context like the child's), as the oracle. */
async function bySandbox(text: string): Promise<string> {
  const { context, options } = createTemplateContext(vm);
  vm.runInContext(await ejsBundleSource(), context, options);
  const request = JSON.stringify({ path: '/etc/t', text, files: {} });
  const result = vm.runInContext(
    `"use strict";(${sandboxBoot.toString()})(${JSON.stringify(request)}, ${JSON.stringify(data)})`,
    context,
    options,
  ) as string;
  expect(result[0], result).toBe('O');
  return result.slice(1);
}

const PLAIN = [
  '<%= args.hostname %>\n',
  'a <%- args.hostname %> b',
  '<%=args.hostname%>',
  '<%=\targs.hostname\t%>',
  '<%= config.dns.nameservers.length %> servers',
  '<%= manifest.name %>\r\nline two\r\n',
  '<%= args.count %> <%= args.ratio %> <%= args.big %> <%= args.flag %> [<%= args.none %>] [<%- args.none %>]',
  '<%= args.html %> <%- args.html %>',
  '<%= args.$odd %> <%= args.host_ %> <%= args.nested.deeper.name %>',
  'no tags at all\n',
  '',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: text for ejs, which must pass it as it is
  'héllo ☃ <%= args.hostname %> \\ " \' ` ${x}',
  '100% sure, <b>bold</b> 50 % <',
];

const NOT_PLAIN = [
  '<%= args.hostname -%>\nnext',
  '<%= args.host_%>',
  '<%% literal %>',
  'a %> b',
  '<%= args.missing %>',
  '<%= args.hostname.length %>',
  '<%= args.constructor %>',
  '<%= args.__proto__ %>',
  '<%= args.nested %>',
  '<%= args.list %>',
  '<%= hostname %>',
  '<% if (args.flag) { %>x<% } %>',
  '<%# a comment %>',
  '<%_ args.hostname _%>',
  "<%- include('/etc/other') %>",
  '<%= args["hostname"] %>',
  '<%= args.hostname %',
  '<%== args.hostname %>',
  'a lone <% %',
];

describe('renderPlain', () => {
  it('fills in templates that only put values in place, exactly as the sandbox does', async () => {
    const scope = plainScope(data);
    for (const text of PLAIN) {
      const plain = renderPlain(text, scope);
      expect({ text, plain }).toEqual({ text, plain: await bySandbox(text) });
    }
  });

  it('leaves every other template to the sandbox', () => {
    const scope = plainScope(data);
    for (const text of NOT_PLAIN) expect({ text, plain: renderPlain(text, scope) }).toEqual({ text });
    // Only own properties of the data: a configuration without args gives none.
    expect(renderPlain('<%= args.hostname %>', plainScope(JSON.stringify({ configuration: {} })))).toBe(
      undefined,
    );
  });

  it("renders an image's plain templates without starting the renderer's child, and others with it", async () => {
    const templates = (texts: string[]) =>
      texts.map((text, i) => ({ path: `/etc/t${i}`, source: Buffer.from(text) }));
    const opts = { readInclude: async () => undefined, configuration, manifest };
    const plain = await renderTemplates({ ...opts, templates: templates(PLAIN) });
    expect(vi.mocked(childProcess.spawn)).not.toHaveBeenCalled();
    const mixed = await renderTemplates({
      ...opts,
      templates: templates([...PLAIN, '<% for (const n of config.dns.nameservers) { %><%= n %>,<% } %>']),
    });
    expect(vi.mocked(childProcess.spawn)).toHaveBeenCalledTimes(1);
    for (const [path, text] of plain) expect(mixed.get(path)?.toString()).toBe(text.toString());
    expect(mixed.get(`/etc/t${PLAIN.length}`)?.toString()).toBe('192.0.2.1,192.0.2.2,');
  });
});
