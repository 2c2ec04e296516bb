import { asBatch, type Entry, type EntryStream } from '../entry.js';

export interface InjectedEntry extends Entry {
  /** Keep the source's entry when it has this path (a parent directory the image may already have). */
  ifAbsent?: boolean;
  /**
   * Take the modification time of the nearest directory above it in the output, so an added file looks
   * as old as the tree it joins, deterministically.
   */
  inheritMtime?: boolean;
}

/**
 * Merges extra entries into a sorted stream at their sorted places. An extra entry replaces the
 * source's entry of the same path unless it is marked `ifAbsent`. The caller lists the parent
 * directories its entries need (as `ifAbsent`), so the stream stays a valid tree.
 */
export async function* injectEntries(
  entries: EntryStream,
  extra: readonly InjectedEntry[],
): AsyncIterable<readonly Entry[]> {
  const pending = [...extra].sort((a, b) => Buffer.compare(a.path, b.path));
  // The directories above the current position, for `inheritMtime`.
  const ancestors: Entry[] = [];
  const emit = (entry: Entry): Entry => {
    while (ancestors.length > 0 && !isBelow(entry.path, ancestors[ancestors.length - 1]!.path))
      ancestors.pop();
    if (entry.type === 'dir') ancestors.push(entry);
    return entry;
  };
  const place = (injected: InjectedEntry): Entry => {
    const { ifAbsent: _, inheritMtime, ...entry } = injected;
    if (inheritMtime) {
      while (ancestors.length > 0 && !isBelow(entry.path, ancestors[ancestors.length - 1]!.path))
        ancestors.pop();
      const parent = ancestors[ancestors.length - 1];
      if (parent) entry.mtimeNs = parent.mtimeNs;
    }
    return emit(entry);
  };
  let next = 0;
  for await (const item of entries) {
    const batch = asBatch(item);
    // Every extra entry placed: nothing more to merge or to inherit from, the batch goes on as it is.
    if (next === pending.length) {
      yield batch;
      continue;
    }
    const out: Entry[] = [];
    for (const entry of batch) {
      while (next < pending.length && Buffer.compare(pending[next]!.path, entry.path) < 0) {
        out.push(place(pending[next++]!));
      }
      const same =
        next < pending.length && pending[next]!.path.equals(entry.path) ? pending[next++]! : undefined;
      out.push(same && !same.ifAbsent ? place(same) : emit(entry));
    }
    yield out;
  }
  const rest: Entry[] = [];
  while (next < pending.length) rest.push(place(pending[next++]!));
  if (rest.length > 0) yield rest;
}

function isBelow(path: Buffer, dir: Buffer): boolean {
  if (dir.length === 1) return path.length > 1; // the root
  return path.length > dir.length && path[dir.length] === 0x2f && path.subarray(0, dir.length).equals(dir);
}

/** Directory entries for every ancestor of `imagePath` below the root, marked `ifAbsent`. */
export function parentDirectories(
  imagePath: string,
  meta: Pick<InjectedEntry, 'mtimeNs' | 'inheritMtime'>,
): InjectedEntry[] {
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
      ...(meta.inheritMtime ? { inheritMtime: true } : {}),
    });
  }
  return dirs;
}

/** A regular file entry holding `content`. */
export function fileEntry(
  imagePath: string,
  content: Buffer,
  meta: Pick<InjectedEntry, 'mode' | 'mtimeNs' | 'inheritMtime'>,
): InjectedEntry {
  return {
    ...(meta.inheritMtime ? { inheritMtime: true } : {}),
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
