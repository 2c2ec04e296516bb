/**
 * Configuring an image directory in place (`cloudlets config`): its templates are rendered over
 * themselves and the configuration is recorded in `/.cloudlet/applied_config`.
 *
 * The earlier tool lost its templates on first use. Here the pristine text of each template is kept
 * under `/.cloudlet/templates/<image path>` the first time, and every later configuration (with
 * `force`) renders from that copy, so an image can be configured again and again.
 */
import type { Configuration } from '../config/index.js';
import { CloudletsError } from '../errors.js';
import type { Manifest } from '../manifest/index.js';
import { parseJson } from '../manifest/json.js';
import type { ImageSource } from '../stream/entry.js';
import { openDirectorySource } from '../stream/sources/dir.js';
import { renderTemplates, type TemplateInput } from '../templates/index.js';
import { imagePathSegments, writeAtomically, writeTarget } from './image-write.js';

export const APPLIED_CONFIG_PATH = '/.cloudlet/applied_config';
export const PRISTINE_DIR = '/.cloudlet/templates';

export interface ConfigureOptions {
  /** A validated configuration (validateConfiguration). */
  configuration: Configuration;
  manifest: Manifest;
  /** Configure again an image that already has an applied configuration. Default false. */
  force?: boolean;
  /** Per-template time limit in milliseconds; default 10 000. */
  timeoutMs?: number;
  /** The image read as a source; default: a directory source on `dir`. */
  source?: ImageSource;
  /** Stops the render (before anything is written) when aborted. */
  signal?: AbortSignal | undefined;
}

export interface ConfigureResult {
  /** Templates rendered in place, in manifest order. */
  rendered: string[];
  /** Templates whose pristine copy was saved by this run (their first configuration). */
  saved: string[];
  /** Templates the manifest lists that are not in the image: skipped. */
  missing: string[];
}

/** The image path where the pristine text of a template is kept. */
export function pristinePath(templatePath: string): string {
  return `${PRISTINE_DIR}${templatePath}`;
}

/**
 * Renders the templates of the image directory `dir` in place and records the configuration.
 * Everything is rendered before anything is written, so a template error leaves the image untouched.
 */
export async function configureImage(dir: string, opts: ConfigureOptions): Promise<ConfigureResult> {
  const source = opts.source ?? openDirectorySource(dir);
  try {
    if (!opts.force && (await source.readFile(APPLIED_CONFIG_PATH)) !== undefined) {
      throw new CloudletsError('EEXIST', 'the image is already configured', {
        where: APPLIED_CONFIG_PATH,
        hint: 'pass --force to configure it again (templates are rendered from their pristine copies)',
      });
    }

    const inputs: TemplateInput[] = [];
    const toSave: TemplateInput[] = [];
    const missing: string[] = [];
    for (const path of new Set(opts.manifest.templates)) {
      imagePathSegments(path);
      // Refuse an unwritable target before rendering anything.
      await writeTarget(dir, path);
      const pristine = await source.readFile(pristinePath(path));
      if (pristine !== undefined) {
        inputs.push({ path, source: pristine });
        continue;
      }
      const current = await source.readFile(path);
      if (current === undefined) {
        missing.push(path);
        continue;
      }
      inputs.push({ path, source: current });
      toSave.push({ path, source: current });
    }

    const rendered = await renderTemplates({
      templates: inputs,
      // A template included by another is read in its pristine form, not as last configured.
      readInclude: async (path) => (await source.readFile(pristinePath(path))) ?? source.readFile(path),
      configuration: opts.configuration,
      manifest: opts.manifest,
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      signal: opts.signal,
    });

    // Pristine copies first: if the run stops half-way, the next one still renders from them.
    for (const { path, source: text } of toSave) {
      const original = await writeTarget(dir, path);
      const copy = await writeTarget(dir, pristinePath(path), { createParents: true });
      const st = original.stats;
      const owner = st ? { mode: st.mode, uid: st.uid, gid: st.gid } : defaultOwner(0o644);
      await writeAtomically(copy, text, owner, pristinePath(path));
    }
    for (const [path, text] of rendered) {
      const target = await writeTarget(dir, path);
      const st = target.stats;
      if (!st)
        throw new CloudletsError('EOUTPUT', 'disappeared while the image was being configured', {
          where: path,
        });
      await writeAtomically(target, text, { mode: st.mode, uid: st.uid, gid: st.gid }, path);
    }
    // The configuration may hold secrets: readable by its owner only.
    const record = await writeTarget(dir, APPLIED_CONFIG_PATH, { createParents: true });
    await writeAtomically(
      record,
      Buffer.from(`${JSON.stringify(opts.configuration, null, 2)}\n`),
      defaultOwner(0o600),
      APPLIED_CONFIG_PATH,
    );
    return { rendered: [...rendered.keys()], saved: toSave.map((t) => t.path), missing };
  } finally {
    if (opts.source === undefined) await source.close?.();
  }
}

function defaultOwner(mode: number) {
  return { mode, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

/** The configuration recorded by the last `configureImage`, or undefined when none was applied. */
export async function readAppliedConfig(from: string | ImageSource): Promise<Configuration | undefined> {
  const source = typeof from === 'string' ? openDirectorySource(from) : from;
  try {
    const bytes = await source.readFile(APPLIED_CONFIG_PATH);
    if (bytes === undefined) return undefined;
    const value = parseJson(bytes.toString('utf8'), { where: APPLIED_CONFIG_PATH, code: 'ECONFIG' });
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new CloudletsError('ECONFIG', 'is not a configuration object', { where: APPLIED_CONFIG_PATH });
    }
    return value as Configuration;
  } finally {
    if (typeof from === 'string') await source.close?.();
  }
}
