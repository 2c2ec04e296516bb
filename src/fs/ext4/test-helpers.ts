/** Test helpers: in-memory entry trees, a build into a temp raw file, and e2fsprogs readers. */
import { execFileSync, spawnSync } from 'node:child_process';
import type { Entry, EntryType } from '../../stream/entry.js';
import { comparePaths } from '../../stream/entry.js';

export interface Spec {
  path: string;
  type?: EntryType;
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeNs?: bigint;
  size?: number;
  data?: Buffer | string;
  /** Lazily generated content, for big files. */
  chunks?: () => AsyncIterable<Buffer>;
  target?: string | Buffer;
  major?: number;
  minor?: number;
  xattrs?: Record<string, Buffer | string>;
}

export const T0 = 1_700_000_000_123_456_789n;

export function entry(s: Spec): Entry {
  const type = s.type ?? (s.data !== undefined || s.chunks ? 'file' : 'dir');
  const data = typeof s.data === 'string' ? Buffer.from(s.data) : s.data;
  const size = s.size ?? data?.length ?? 0;
  return {
    path: Buffer.from(s.path),
    type,
    mode: s.mode ?? (type === 'dir' ? 0o755 : type === 'symlink' ? 0o777 : 0o644),
    uid: s.uid ?? 0,
    gid: s.gid ?? 0,
    mtimeNs: s.mtimeNs ?? T0,
    size: type === 'file' ? size : 0,
    linkTarget: s.target === undefined ? undefined : Buffer.from(s.target),
    devMajor: s.major,
    devMinor: s.minor,
    xattrs: new Map(Object.entries(s.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v)])),
    content:
      type !== 'file'
        ? undefined
        : (s.chunks ??
          async function* () {
            if (data && data.length > 0) yield data;
          }),
  };
}

/** Sorted entries, as every source yields them. */
export async function* stream(specs: Spec[]): AsyncIterable<Entry> {
  const list = specs.map(entry).sort((a, b) => comparePaths(a.path, b.path));
  for (const e of list) yield e;
}

export function fsck(image: string): { status: number | null; out: string } {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

export function debugfs(image: string, request: string): string {
  return execFileSync('debugfs', ['-R', request, image], {
    encoding: 'latin1',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
  });
}

/** e2fsck -fn output minus its banner, pass headers and summary: what is left is a problem. */
export function fsckProblems(image: string): string[] {
  const { status, out } = fsck(image);
  const lines = out
    .split('\n')
    .filter(
      (l) => l.trim() !== '' && !/^(Pass \d[A-E]?: |e2fsck \d)/.test(l) && !/: \d+\/\d+ files \(/.test(l),
    );
  if (status !== 0) lines.push(`exit status ${status}`);
  return lines;
}
