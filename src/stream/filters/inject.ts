import type { Entry } from '../entry.js';

export interface InjectedEntry extends Entry {
  /** Keep the source's entry when it has this path (a parent directory the image may already have). */
  ifAbsent?: boolean;
}

/**
 * Merges extra entries into a sorted stream at their sorted places. An extra entry replaces the
 * source's entry of the same path unless it is marked `ifAbsent`. The caller lists the parent
 * directories its entries need (as `ifAbsent`), so the stream stays a valid tree.
 */
export async function* injectEntries(
  entries: AsyncIterable<Entry>,
  extra: readonly InjectedEntry[],
): AsyncIterable<Entry> {
  const pending = [...extra].sort((a, b) => Buffer.compare(a.path, b.path));
  let next = 0;
  for await (const entry of entries) {
    while (next < pending.length && Buffer.compare(pending[next]!.path, entry.path) < 0) {
      yield strip(pending[next++]!);
    }
    const same =
      next < pending.length && pending[next]!.path.equals(entry.path) ? pending[next++]! : undefined;
    yield same && !same.ifAbsent ? strip(same) : entry;
  }
  while (next < pending.length) yield strip(pending[next++]!);
}

function strip({ ifAbsent: _, ...entry }: InjectedEntry): Entry {
  return entry;
}

/** Directory entries for every ancestor of `imagePath` below the root, marked `ifAbsent`. */
export function parentDirectories(imagePath: string, meta: Pick<Entry, 'mtimeNs'>): InjectedEntry[] {
  const parts = imagePath.split('/').filter(Boolean);
  const dirs: InjectedEntry[] = [];
  for (let i = 1; i < parts.length; i++) {
    dirs.push({
      path: Buffer.from(`/${parts.slice(0, i).join('/')}`),
      type: 'dir',
      mode: 0o755,
      uid: 0,
      gid: 0,
      mtimeNs: meta.mtimeNs,
      size: 0,
      xattrs: new Map(),
      ifAbsent: true,
    });
  }
  return dirs;
}

/** A regular file entry holding `content`. */
export function fileEntry(
  imagePath: string,
  content: Buffer,
  meta: Pick<Entry, 'mode' | 'mtimeNs'>,
): InjectedEntry {
  return {
    path: Buffer.from(imagePath),
    type: 'file',
    mode: meta.mode,
    uid: 0,
    gid: 0,
    mtimeNs: meta.mtimeNs,
    size: content.length,
    xattrs: new Map(),
    content: async function* () {
      yield content;
    },
  };
}
