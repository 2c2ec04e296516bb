/**
 * Renders EJS templates that come from strangers. One child process per call renders every template,
 * each in a fresh vm context (see ./renderer.ts for the layers of isolation); templates that only put
 * values in place run no code and are filled in without it (./plain.ts). Includes are read by the
 * parent through `readInclude`, inside the image only, and handed to the child as text: the child
 * reports which files a template wants, and the template is rendered again once they are loaded.
 *
 * What a template sees (./sandbox.ts):
 *  - `args`, `config` (the whole configuration), `manifest`, and `include(path, data?)`, where `path` is
 *    an image path, relative to the including file or absolute, taken exactly (no `.ejs` added);
 *  - for templates of the earlier tool, each configuration key (`dns`, `ip`, ...) and each user
 *    argument (`hostname`) directly, arguments winning; only keys that are identifiers, do not start
 *    with `__` and are not one of the names above or of ejs's generated code;
 *  - EJS 7 semantics otherwise: `<%=` escapes HTML, `<%-` does not. Text is UTF-8.
 */
import type { ChildProcess } from 'node:child_process';
import type { Configuration } from '../config/index.js';
import { CloudletsError, isCloudletsError } from '../errors.js';
import type { Manifest } from '../manifest/index.js';
import { ejsBundleSource } from './ejs-bundle.js';
import { templateError, timeoutError } from './errors.js';
import { plainScope, renderPlain } from './plain.js';
import { type Renderer, RendererStopped, startRenderer } from './renderer.js';

export interface TemplateInput {
  /** Image path, e.g. `/etc/hostname`: used for includes and named in errors. */
  path: string;
  source: Buffer;
}

export interface RenderOptions {
  templates: TemplateInput[];
  /** Reads an included file by image path, inside the image only (ImageSource.readFile). */
  readInclude: (imagePath: string) => Promise<Buffer | undefined>;
  configuration: Configuration;
  manifest: Manifest;
  /** Per-template time limit in milliseconds; default 10 000. */
  timeoutMs?: number;
  /**
   * Stops the render when aborted (Ctrl-C, SIGTERM): the renderer is killed at once, not left to finish
   * a template that may run until its time limit, and the call rejects with the signal's reason.
   */
  signal?: AbortSignal | undefined;
}

export const DEFAULT_TEMPLATE_TIMEOUT_MS = 10_000;
/** Distinct files one template may include (directly or not). */
export const MAX_INCLUDES = 256;
const MAX_INCLUDE_BYTES = 16 * 1024 * 1024;
/** All rendered output of one call is held in memory; past this the call fails. */
export const MAX_TOTAL_OUTPUT_BYTES = 256 * 1024 * 1024;
/** Time the child gets beyond a template's own limit to start, report and send its answer. */
const GRACE_MS = 5_000;

/** A renderer started ahead of need by prestartRenderer, taken by the next render. */
let spare: Renderer | undefined;

/**
 * Starts the renderer's child process now, for a render that is likely to come: booting it takes about
 * 100 ms, which then overlaps with loading the image and validating the configuration instead of holding
 * up the output. The next renderTemplates call takes it; discardSpareRenderer stops it if none comes.
 */
export function prestartRenderer(started?: { child: ChildProcess; prepared: boolean }): void {
  if (spare) return;
  const renderer = startRenderer(started?.child);
  spare = renderer;
  if (started?.prepared) return;
  // And has it compile ejs and make the first template's context meanwhile.
  ejsBundleSource().then(
    (ejs) => renderer.post({ type: 'prepare', ejs }),
    () => undefined, // the render reads it again and reports
  );
}

/** Stops a renderer started by prestartRenderer that no render took. */
export function discardSpareRenderer(): void {
  spare?.close();
  spare = undefined;
}

/** Renders every template in isolation; returns image path → rendered bytes. */
export async function renderTemplates(opts: RenderOptions): Promise<Map<string, Buffer>> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TEMPLATE_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new CloudletsError('EUSAGE', `the template time limit must be a positive number, not ${timeoutMs}`);
  }
  const rendered = new Map<string, Buffer>();
  if (opts.templates.length === 0) return rendered;
  opts.signal?.throwIfAborted();

  const data = JSON.stringify({ configuration: opts.configuration, manifest: opts.manifest });
  // Templates that only put values in place are filled in here (./plain.ts); the child is started only
  // for the others, if any.
  const scope = plainScope(data);
  const plain = opts.templates.map((t) => renderPlain(t.source.toString('utf8'), scope));
  let total = 0;
  const keep = (template: TemplateInput, output: Buffer) => {
    total += output.length;
    if (total > MAX_TOTAL_OUTPUT_BYTES) {
      throw new CloudletsError('ETEMPLATE', 'the rendered templates exceed 256 MiB in total', {
        where: template.path,
      });
    }
    rendered.set(template.path, output);
  };
  if (plain.every((text) => text !== undefined)) {
    for (const [i, template] of opts.templates.entries())
      keep(template, Buffer.from(plain[i] as string, 'utf8'));
    return rendered;
  }
  const renderer = spare ?? startRenderer();
  spare = undefined;
  const onAbort = () => renderer.close();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    opts.signal?.throwIfAborted();
    const first = opts.templates[0]?.path ?? '';
    await ask(renderer, { type: 'init', ejs: await ejsBundleSource(), data }, GRACE_MS * 4, {
      templatePath: first,
    });
    const includes = new Map<string, string | null>();
    for (const [i, template] of opts.templates.entries()) {
      const text = plain[i];
      keep(
        template,
        text === undefined
          ? await renderOne(renderer, template, { ...opts, timeoutMs, includes })
          : Buffer.from(text, 'utf8'),
      );
    }
  } catch (err) {
    // The renderer killed by onAbort: its failure is the interruption's.
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    renderer.close();
  }
  return rendered;
}

interface RenderOneOptions extends RenderOptions {
  timeoutMs: number;
  /** Include texts already read during this call (null: absent from the image). */
  includes: Map<string, string | null>;
}

async function renderOne(
  renderer: Renderer,
  template: TemplateInput,
  opts: RenderOneOptions,
): Promise<Buffer> {
  const needed = new Set<string>();
  let left = opts.timeoutMs;
  for (;;) {
    const files: Record<string, string | null> = {};
    for (const path of needed) files[path] = opts.includes.get(path) ?? null;
    const request = JSON.stringify({ path: template.path, text: template.source.toString('utf8'), files });
    const started = performance.now();
    const timeoutMs = Math.max(1, Math.ceil(left));
    const reply = await ask(renderer, { type: 'render', request, timeoutMs }, timeoutMs + GRACE_MS, {
      templatePath: template.path,
      timeoutMs: opts.timeoutMs,
    });
    left -= performance.now() - started;
    const header = reply.header;
    switch (header.type) {
      case 'output':
        return reply.body;
      case 'timeout':
        throw timeoutError(template.path, opts.timeoutMs);
      case 'error':
        throw templateError(template.path, header.error);
      case 'need':
        await loadIncludes(template.path, header.paths, needed, opts);
        if (left <= 0) throw timeoutError(template.path, opts.timeoutMs);
        break;
      default:
        throw new CloudletsError(
          'ETEMPLATE',
          header.type === 'fatal' ? header.message : `unexpected answer from the renderer: ${header.type}`,
          { where: template.path },
        );
    }
  }
}

async function loadIncludes(
  templatePath: string,
  paths: unknown,
  needed: Set<string>,
  opts: RenderOneOptions,
): Promise<void> {
  if (!Array.isArray(paths) || paths.length === 0) {
    throw new CloudletsError('ETEMPLATE', 'the renderer asked for includes without naming them', {
      where: templatePath,
    });
  }
  for (const path of paths) {
    // The sandbox resolves paths itself, but its answers are only as good as the template lets them be.
    if (typeof path !== 'string' || !isNormalImagePath(path) || needed.has(path)) {
      throw new CloudletsError('ETEMPLATE', `the renderer asked for an invalid include: ${String(path)}`, {
        where: templatePath,
      });
    }
    needed.add(path);
    if (needed.size > MAX_INCLUDES) {
      throw new CloudletsError('ETEMPLATE', `includes more than ${MAX_INCLUDES} files`, {
        where: templatePath,
      });
    }
    if (opts.includes.has(path)) continue;
    let content: Buffer | undefined;
    try {
      content = await opts.readInclude(path);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new CloudletsError(
        isCloudletsError(err) ? err.code : 'ETEMPLATE',
        `include ${path}: ${message}`,
        {
          where: templatePath,
          cause: err,
        },
      );
    }
    if (content !== undefined && content.length > MAX_INCLUDE_BYTES) {
      throw new CloudletsError('ETEMPLATE', `include ${path}: larger than 16 MiB`, { where: templatePath });
    }
    opts.includes.set(path, content === undefined ? null : content.toString('utf8'));
  }
}

function isNormalImagePath(path: string): boolean {
  if (!path.startsWith('/') || path.includes('\0')) return false;
  return path
    .split('/')
    .slice(1)
    .every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** One request; a stopped child becomes an error naming the template it was rendering. */
async function ask(
  renderer: Renderer,
  message: Parameters<Renderer['request']>[0],
  limitMs: number,
  about: { templatePath: string; timeoutMs?: number },
) {
  try {
    return await renderer.request(message, limitMs);
  } catch (err) {
    if (!(err instanceof RendererStopped)) throw err;
    if (err.reason === 'timeout' && about.timeoutMs !== undefined) {
      throw timeoutError(about.templatePath, about.timeoutMs);
    }
    const message_ =
      message.type === 'init' ? `could not start the template renderer: ${err.message}` : err.message;
    throw new CloudletsError('ETEMPLATE', message_, { where: about.templatePath });
  }
}
