/**
 * The export pipeline every output shares: source entries → kind selection (volatile left out by default)
 * → rendered templates swapped in → a sink. Sinks (tar, disks, later VM and OCI formats) only ever see
 * the stream this returns.
 */
import type { Configuration } from '../config/index.js';
import { APPLIED_CONFIG_PATH, pristinePath } from '../configure/index.js';
import { CloudletsError } from '../errors.js';
import type { Image } from '../image/index.js';
import { asBatch, type Entry, type EntryStream, sourceStream } from '../stream/entry.js';
import { fileEntry, type InjectedEntry, injectEntries, parentDirectories } from '../stream/filters/inject.js';
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

/**
 * The entries of `image` as they go out: volatile left out, templates rendered. In batches where the
 * source reads in bulk (see EntryStream; `eachEntry` gives them one at a time).
 */
export async function exportEntries(image: Image, opts: ExportOptions): Promise<EntryStream> {
  const kinds = opts.only ?? DEFAULT_KINDS;
  const classifier = classify(image.manifest, { where: image.where });
  const templates = kinds.includes('templates') ? await readTemplates(image) : [];
  // Not awaited here: renderEntries overlaps it with the source's walk (and awaits it before output).
  const rendered = renderImageTemplates(image, templates, opts);
  rendered.catch(() => undefined); // reported by renderEntries; this only marks it handled meanwhile
  let selected: EntryStream = selectEntries(sourceStream(image.source), {
    classify: classifier,
    kinds,
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
  });
  if (templates.length > 0 && kinds.includes('other')) {
    selected = injectEntries(selected, configurationRecord(templates, opts.configuration));
  }
  return abortable(renderEntries(selected, rendered), opts.signal);
}

interface TemplateText {
  path: string;
  source: Buffer;
}

/**
 * An export is a configuration on the way out, so the output records it as `cloudlets config` would:
 * the applied configuration, and the pristine text of each template (unless the image already keeps
 * one), so that the exported image can be configured again.
 */
function configurationRecord(
  templates: readonly TemplateText[],
  configuration: Configuration,
): InjectedEntry[] {
  const meta = { mtimeNs: 0n, inheritMtime: true };
  const record: InjectedEntry[] = [
    ...parentDirectories(APPLIED_CONFIG_PATH, meta),
    fileEntry(APPLIED_CONFIG_PATH, Buffer.from(`${JSON.stringify(configuration, null, 2)}\n`), {
      ...meta,
      mode: 0o600,
    }),
  ];
  for (const { path, source } of templates) {
    const copy = pristinePath(path);
    record.push(...parentDirectories(copy, meta), {
      ...fileEntry(copy, source, { ...meta, mode: 0o644 }),
      ifAbsent: true,
    });
  }
  // Parents shared by several templates appear once.
  const seen = new Set<string>();
  return record.filter((e) => {
    const key = e.path.toString('latin1');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Reads the text of every template named by the manifest, inside the image only. An image configured
 * in place keeps the pristine text under /.cloudlet/templates: that is the template, not the rendered file.
 */
export async function readTemplates(image: Image): Promise<TemplateText[]> {
  const templates: TemplateText[] = [];
  for (const [index, path] of image.manifest.templates.entries()) {
    const source = (await image.source.readFile(pristinePath(path))) ?? (await image.source.readFile(path));
    if (source === undefined) {
      throw new CloudletsError('ETEMPLATE', `/templates/${index}: ${path} does not exist in the image`, {
        where: image.where,
      });
    }
    templates.push({ path, source });
  }
  return templates;
}

/** Renders templates in one sandbox; includes are read from the image. */
export async function renderImageTemplates(
  image: Image,
  templates: readonly TemplateText[],
  opts: Pick<ExportOptions, 'configuration' | 'templateTimeoutMs' | 'signal'>,
): Promise<Map<string, Buffer>> {
  if (templates.length === 0) return new Map();
  return renderTemplates({
    templates: [...templates],
    // An included template is read from its pristine copy too, when the image keeps one.
    readInclude: async (path) =>
      (image.manifest.templates.includes(path)
        ? await image.source.readFile(pristinePath(path))
        : undefined) ?? (await image.source.readFile(path)),
    configuration: opts.configuration,
    manifest: image.manifest,
    ...(opts.templateTimeoutMs === undefined ? {} : { timeoutMs: opts.templateTimeoutMs }),
    signal: opts.signal,
  });
}

async function* abortable(
  entries: EntryStream,
  signal: AbortSignal | undefined,
): AsyncIterable<readonly Entry[]> {
  for await (const item of entries) {
    if (signal?.aborted) throw signal.reason ?? new CloudletsError('EINTERRUPTED', 'interrupted');
    yield asBatch(item);
  }
}
