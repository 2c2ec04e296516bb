/**
 * Path kinds and the filter that keeps the selected ones.
 *
 * A path is exactly one kind, decided in this order:
 *  1. `templates`: listed in `templates` (exact path);
 *  2. `volatile`: it, or a directory above it, matches a volatile pattern (so a volatile directory takes
 *     its contents with it, as in the `.hgignore` the earlier tool generated from these patterns);
 *  3. `persistent`: it is a `persistent` path or lies below one;
 *  4. `other`.
 * Volatile beats persistent because the earlier tool's own sample declares `/var/log` persistent and
 * `/var/log/(?!apt).+` volatile: the directory is kept, its logs are not.
 * Pattern semantics (anchoring, bytes, what is refused as unsafe) are in src/manifest/patterns.ts.
 */
import { CloudletsError } from '../../errors.js';
import type { Manifest } from '../../manifest/index.js';
import {
  checkPathLength,
  compileVolatilePatterns,
  isAtOrBelow,
  manifestPath,
  matchText,
} from '../../manifest/patterns.js';
import { asBatch, type Entry, type EntryStream } from '../entry.js';

export type PathKind = 'templates' | 'volatile' | 'persistent' | 'other';
export const PATH_KINDS: readonly PathKind[] = ['templates', 'volatile', 'persistent', 'other'];
/** What `find`, `tar` and the other exports keep unless told otherwise: everything but volatile. */
export const DEFAULT_KINDS: readonly PathKind[] = ['templates', 'persistent', 'other'];

export type Classifier = (path: Buffer) => PathKind;

export interface ClassifyOptions {
  /** The manifest's name for messages (`.cloudlet/manifest` or the off-band file); default the former. */
  where?: string;
}

/**
 * A classifier for the manifest's paths. Throws EPATTERN for an unsafe volatile pattern now, and EPATH
 * later for a path longer than 4096 bytes.
 */
export function classify(
  manifest: Pick<Manifest, 'templates' | 'persistent' | 'volatile'>,
  opts: ClassifyOptions = {},
): Classifier {
  const volatile = compileVolatilePatterns(manifest.volatile, opts.where);
  const templates = new Set(manifest.templates.map((t) => manifestPath(t).toString('latin1')));
  const persistent = manifest.persistent.map(manifestPath);
  // Whether a directory or one above it matches, remembered per directory: siblings share a parent, so
  // a path costs one lookup of its parent instead of a walk up its ancestors.
  const aboveVerdicts = new Map<string, boolean>();

  const matches = (text: string) => volatile.some((re) => re.test(text));
  /** `text` up to `slash` (a directory), or one above it, matches. */
  const volatileAbove = (text: string, slash: number): boolean => {
    if (slash <= 0) return false;
    const dir = text.slice(0, slash);
    let verdict = aboveVerdicts.get(dir);
    if (verdict === undefined) {
      verdict = matches(dir) || volatileAbove(dir, dir.lastIndexOf('/'));
      if (aboveVerdicts.size > 10_000) aboveVerdicts.clear();
      aboveVerdicts.set(dir, verdict);
    }
    return verdict;
  };
  const isVolatile = (text: string): boolean => matches(text) || volatileAbove(text, text.lastIndexOf('/'));

  return (path) => {
    checkPathLength(path);
    // One text for both tests (the templates' keys are latin1 too): this runs for every path.
    const text = matchText(path);
    if (templates.has(text)) return 'templates';
    if (volatile.length > 0 && isVolatile(text)) return 'volatile';
    if (persistent.some((p) => isAtOrBelow(path, p))) return 'persistent';
    return 'other';
  };
}

export interface SelectOptions {
  classify: Classifier;
  /** Kinds to keep; default {@link DEFAULT_KINDS}. */
  kinds?: readonly PathKind[];
  /**
   * Told about a hardlink that had to be dropped: its first link was left out and the source cannot
   * read the content any more (an archive). Default: silent.
   */
  onWarning?: (message: string) => void;
}

/**
 * Keeps the entries of the selected kinds. Directories above a kept entry are not added back: a
 * volatile `/tmp/.+` drops what is in `/tmp`, not `/tmp`. A hardlink whose first link was dropped
 * becomes a regular file (its content read through the hardlink, which a directory source allows), and
 * later links to the same file point at it.
 */
export async function* selectEntries(
  entries: EntryStream,
  opts: SelectOptions,
): AsyncIterable<readonly Entry[]> {
  const select = createSelector(opts);
  for await (const item of entries) {
    const out: Entry[] = [];
    for (const entry of asBatch(item)) {
      const kept = select(entry);
      if (kept) out.push(kept);
    }
    if (out.length > 0) yield out;
  }
}

/** The selection one entry at a time: the entry as it goes out, or undefined when it is left out. */
function createSelector(opts: SelectOptions): (entry: Entry) => Entry | undefined {
  const kinds = new Set(opts.kinds ?? DEFAULT_KINDS);
  /** Dropped path (latin1) → the path now holding its content, or null when nothing does yet. */
  const moved = new Map<string, Buffer | null>();
  return (entry) => {
    const keep = kinds.has(opts.classify(entry.path));
    if (entry.type === 'file') {
      if (!keep) moved.set(entry.path.toString('latin1'), null);
      return keep ? entry : undefined;
    }
    if (entry.type !== 'hardlink' || !entry.linkTarget) return keep ? entry : undefined;
    const target = entry.linkTarget.toString('latin1');
    if (!moved.has(target)) return keep ? entry : undefined;
    if (!keep) return undefined;
    const holder = moved.get(target);
    if (holder) return { ...entry, linkTarget: holder };
    if (!entry.content || entry.targetSize === undefined) {
      opts.onWarning?.(
        `${entry.path.toString('utf8')}: left out: a hardlink to ${entry.linkTarget.toString('utf8')}, which was left out`,
      );
      return undefined;
    }
    moved.set(target, entry.path);
    return { ...entry, type: 'file', size: entry.targetSize, linkTarget: undefined, targetSize: undefined };
  };
}

export function parseKinds(values: readonly string[] | undefined): PathKind[] {
  if (!values || values.length === 0) return [...DEFAULT_KINDS];
  for (const v of values) {
    if (!PATH_KINDS.includes(v as PathKind)) {
      throw new CloudletsError('EUSAGE', `unknown kind ${JSON.stringify(v)}`, {
        where: '--only',
        hint: `one or more of ${PATH_KINDS.join(', ')}`,
      });
    }
  }
  return [...new Set(values as PathKind[])];
}
