/**
 * `find`: the image's paths with their kinds. The root `/` itself is not listed (like the earlier tool,
 * which listed what lies under the root); every other entry is, in byte order of its path.
 */
import type { EntryType } from '../stream/entry.js';
import { classify, DEFAULT_KINDS, type PathKind } from '../stream/filters/select.js';
import type { Image } from './index.js';

export interface FoundPath {
  /** Image-rooted path bytes, exactly as in the image. */
  path: Buffer;
  kind: PathKind;
  type: EntryType;
}

export interface FindOptions {
  /** Kinds listed; default templates, persistent and other (all but volatile). */
  kinds?: readonly PathKind[];
}

/** Streams the paths of `image` whose kind is selected. Throws EPATTERN before the first one for an unsafe pattern. */
export function findPaths(
  image: Pick<Image, 'source' | 'manifest' | 'where'>,
  opts: FindOptions = {},
): AsyncIterable<FoundPath> {
  const classifier = classify(image.manifest, { where: image.where });
  const kinds = new Set(opts.kinds ?? DEFAULT_KINDS);
  return (async function* () {
    for await (const entry of image.source.entries()) {
      if (entry.path.length === 1) continue;
      const kind = classifier(entry.path);
      if (kinds.has(kind)) yield { path: entry.path, kind, type: entry.type };
    }
  })();
}

/**
 * The JSON form of a found path: `path` is the UTF-8 text of the name; a name that is not valid UTF-8
 * gets `path` with U+FFFD for the bad bytes and `pathBase64`, the exact bytes.
 */
export function foundPathJson(found: FoundPath): {
  path: string;
  pathBase64?: string;
  kind: PathKind;
  type: EntryType;
} {
  const text = found.path.toString('utf8');
  if (Buffer.from(text, 'utf8').equals(found.path)) return { path: text, kind: found.kind, type: found.type };
  return { path: text, pathBase64: found.path.toString('base64'), kind: found.kind, type: found.type };
}
