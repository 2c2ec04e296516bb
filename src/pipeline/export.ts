/**
 * The export pipeline every output shares: source entries → kind selection (volatile left out by default)
 * → rendered templates swapped in → a sink. Sinks (tar, disks, later VM and OCI formats) only ever see
 * the stream this returns.
 */
import type { Configuration } from '../config/index.js';
import { CloudletsError } from '../errors.js';
import type { Image } from '../image/index.js';
import type { Entry } from '../stream/entry.js';
import { renderEntries } from '../stream/filters/render.js';
import { classify, DEFAULT_KINDS, type PathKind, selectEntries } from '../stream/filters/select.js';
import { renderTemplates } from '../templates/index.js';

export type OnlyKind = PathKind;

export interface ExportOptions {
  /** The validated configuration templates are rendered with. */
  configuration: Configuration;
  /** Kinds of paths to keep; default everything but volatile. */
  only?: readonly OnlyKind[] | undefined;
  /** Per-template time limit; default 10 s. */
  templateTimeoutMs?: number | undefined;
  /** Stops the stream between entries when aborted. */
  signal?: AbortSignal | undefined;
  /** Told about entries left out for a reason the user did not ask for. */
  onWarning?: ((message: string) => void) | undefined;
}

/** The entries of `image` as they go out: volatile left out, templates rendered. */
export async function exportEntries(image: Image, opts: ExportOptions): Promise<AsyncIterable<Entry>> {
  const kinds = opts.only ?? DEFAULT_KINDS;
  const classifier = classify(image.manifest, { where: image.where });
  const rendered = kinds.includes('templates')
    ? await renderImageTemplates(image, opts)
    : new Map<string, Buffer>();
  const selected = selectEntries(image.source.entries(), {
    classify: classifier,
    kinds,
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  return abortable(renderEntries(selected, rendered), opts.signal);
}

/** Reads every template named by the manifest (inside the image only) and renders them in one sandbox. */
export async function renderImageTemplates(
  image: Image,
  opts: Pick<ExportOptions, 'configuration' | 'templateTimeoutMs'>,
): Promise<Map<string, Buffer>> {
  const paths = image.manifest.templates;
  if (paths.length === 0) return new Map();
  const templates = [];
  for (const [index, path] of paths.entries()) {
    const source = await image.source.readFile(path);
    if (source === undefined) {
      throw new CloudletsError('ETEMPLATE', `/templates/${index}: ${path} does not exist in the image`, {
        where: image.where,
      });
    }
    templates.push({ path, source });
  }
  return renderTemplates({
    templates,
    readInclude: (path) => image.source.readFile(path),
    configuration: opts.configuration,
    manifest: image.manifest,
    ...(opts.templateTimeoutMs === undefined ? {} : { timeoutMs: opts.templateTimeoutMs }),
  });
}

async function* abortable(
  entries: AsyncIterable<Entry>,
  signal: AbortSignal | undefined,
): AsyncIterable<Entry> {
  for await (const entry of entries) {
    if (signal?.aborted) throw signal.reason ?? new CloudletsError('EINTERRUPTED', 'interrupted');
    yield entry;
  }
}
