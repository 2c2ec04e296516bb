// Image paths ↔ repository paths. Git refuses any `.git` component and Mercurial any `.hg` component, so
// an image's own nested repository (`/etc/.git` of etckeeper) is stored under an escaped name:
// `.git` → `.git.cloudlets-escaped`, and a real `.git.cloudlets-escaped` gains one more suffix, which keeps
// the mapping one-to-one. Compared without case, as git and hg do.
export const ESCAPE_SUFFIX = '.cloudlets-escaped';

const SLASH = Buffer.from('/');
const SLASH_DOT = Buffer.from('/.');

export type Reserved = '.git' | '.hg';

function escapeComponent(c: string, reserved: Reserved): string {
  const lower = c.toLowerCase();
  if (!lower.startsWith(reserved)) return c;
  let rest = lower.slice(reserved.length);
  while (rest.startsWith(ESCAPE_SUFFIX)) rest = rest.slice(ESCAPE_SUFFIX.length);
  return rest === '' ? c + ESCAPE_SUFFIX : c;
}

function unescapeComponent(c: string, reserved: Reserved): string {
  const lower = c.toLowerCase();
  if (!lower.startsWith(reserved) || !lower.endsWith(ESCAPE_SUFFIX)) return c;
  let rest = lower.slice(reserved.length);
  while (rest.startsWith(ESCAPE_SUFFIX)) rest = rest.slice(ESCAPE_SUFFIX.length);
  return rest === '' ? c.slice(0, -ESCAPE_SUFFIX.length) : c;
}

// Paths are handled as latin1 strings: one char per byte, so any byte sequence survives.
/** `/etc/.git/HEAD` → `etc/.git.cloudlets-escaped/HEAD` (no leading slash). */
export function toRepoPath(imagePath: Buffer, reserved: Reserved): Buffer {
  const parts = imagePath.toString('latin1').slice(1).split('/');
  return Buffer.from(parts.map((c) => escapeComponent(c, reserved)).join('/'), 'latin1');
}

export function fromRepoPath(repoPath: Buffer, reserved: Reserved): Buffer {
  // Only a component ending in the suffix can be escaped (most paths: no splitting, and no '-' at all).
  if (repoPath.indexOf(0x2d) === -1) return Buffer.concat([SLASH, repoPath]);
  const s = repoPath.toString('latin1');
  if (!s.toLowerCase().includes(ESCAPE_SUFFIX)) return Buffer.concat([SLASH, repoPath]);
  const parts = s.split('/');
  return Buffer.from(`/${parts.map((c) => unescapeComponent(c, reserved)).join('/')}`, 'latin1');
}

/** True when the path needs escaping somewhere (so git's own path-based commands cannot take it). */
export function needsEscape(imagePath: Buffer, reserved: Reserved): boolean {
  // Asked for every path of a commit: most hold no component starting with a dot, and say so without a
  // string being made.
  if (imagePath.indexOf(SLASH_DOT) === -1) return false;
  const s = imagePath.toString('latin1').toLowerCase();
  return (
    s.includes(`/${reserved}`) &&
    toRepoPath(imagePath, reserved).toString('latin1') !== imagePath.toString('latin1').slice(1)
  );
}

/**
 * Image paths whose last component is escaped in the repository (a nested `.git` directory or file),
 * shallowest first. A checkout renames them between the real and the escaped name on disk.
 */
export function escapedDirs(imagePaths: Iterable<Buffer>, reserved: Reserved): string[] {
  const out = new Set<string>();
  for (const p of imagePaths) {
    if (!needsEscape(p, reserved)) continue;
    const parts = p.toString('latin1').slice(1).split('/');
    let cur = '';
    for (let i = 0; i < parts.length; i++) {
      cur += `/${parts[i]}`;
      if (escapeComponent(parts[i]!, reserved) !== parts[i]) out.add(cur);
    }
  }
  return [...out].sort((a, b) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
}

/** Where `imagePath` (one of `escapedDirs`) lies on disk while its ancestors are escaped and it is not. */
export function partlyEscaped(imagePath: string, reserved: Reserved, lastEscaped: boolean): Buffer {
  const parts = imagePath.slice(1).split('/');
  const last = parts.length - 1;
  return Buffer.from(
    `/${parts.map((c, i) => (i < last || lastEscaped ? escapeComponent(c, reserved) : c)).join('/')}`,
    'latin1',
  );
}
