// Opening an image: a directory or a tar archive on the host, with its manifest loaded.
import { stat } from 'node:fs/promises';
import { CloudletsError } from '../errors.js';
import { type LoadedManifest, loadManifest } from '../manifest/index.js';
import type { ImageSource } from '../stream/entry.js';
import { openDirectorySource } from '../stream/sources/dir.js';

export interface OpenImageOptions {
  manifestFile?: string;
  strict?: boolean;
  /**
   * The caller is about to read every entry (an export): the source starts reading ahead while the
   * manifest is loaded and checked (ImageSource.readAhead).
   */
  readAhead?: boolean;
  /** How a directory is walked (DirectorySourceOptions.walk): 'find' for a caller that reads it all first. */
  walk?: 'thread' | 'find' | undefined;
}

export interface Image extends LoadedManifest {
  source: ImageSource;
  /** `revision`: `DIR@REV`, a past version read straight from the image's repository. */
  kind: 'directory' | 'archive' | 'revision';
  /** The host path given: the image directory or the archive file. */
  location: string;
}

/**
 * A version-control repository kept at the root of an image directory (`cloudlets hg` puts one there)
 * is not part of the image: `/.git` and `/.hg` are skipped without being walked.
 */
export function isRootVcsDir(path: Buffer): boolean {
  return path.equals(GIT) || path.equals(HG);
}
const GIT = Buffer.from('/.git');
const HG = Buffer.from('/.hg');

/**
 * Opens a directory, a tar archive (plain, gzip, zstd; sniffed by content) or `DIR@REV`, a revision of
 * an image directory's repository, and loads its manifest.
 */
export async function openImage(spec: string, opts: OpenImageOptions = {}): Promise<Image> {
  const revision = await splitRevision(spec);
  let kind: Image['kind'];
  let source: ImageSource;
  if (revision) {
    kind = 'revision';
    const { openRevisionSource } = await import('../vcs/revision-source.js');
    source = await openRevisionSource(revision.dir, revision.rev);
  } else {
    kind = await kindOf(spec);
    if (kind === 'directory') {
      source = openDirectorySource(spec, { prune: isRootVcsDir, ...(opts.walk ? { walk: opts.walk } : {}) });
    } else {
      const { openTarSource } = await import('../stream/sources/tar.js');
      source = await openTarSource(spec);
    }
  }
  // The caller will go through every entry: the walk starts now, beside the manifest's checks.
  if (opts.readAhead) source.readAhead?.();
  try {
    const loaded = await loadManifest(source, {
      ...(opts.manifestFile !== undefined ? { manifestFile: opts.manifestFile } : {}),
      ...(opts.strict !== undefined ? { strict: opts.strict } : {}),
    });
    return { ...loaded, source, kind, location: spec };
  } catch (err) {
    await source.close?.();
    throw err;
  }
}

async function kindOf(spec: string): Promise<'directory' | 'archive'> {
  try {
    const st = await stat(spec);
    if (st.isDirectory()) return 'directory';
    if (st.isFile()) return 'archive';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CloudletsError(
      'ESOURCE',
      code === 'ENOENT' ? 'no such image: not a directory or archive' : `cannot open the image (${code})`,
      {
        where: spec,
        hint: 'give an image directory, a tar archive (.tar, .tar.gz, .tar.zst) or DIR@REVISION',
        cause: err,
      },
    );
  }
  throw new CloudletsError('ESOURCE', 'is neither a directory nor a tar archive', { where: spec });
}

/**
 * `DIR@REV` names a revision when the whole spec is not itself a path and DIR is a directory: a path
 * that really contains `@` keeps working.
 */
async function splitRevision(spec: string): Promise<{ dir: string; rev: string } | undefined> {
  const at = spec.lastIndexOf('@');
  if (at <= 0 || at === spec.length - 1) return undefined;
  const exists = await stat(spec).then(
    () => true,
    () => false,
  );
  if (exists) return undefined;
  const dir = spec.slice(0, at);
  const isDir = await stat(dir).then(
    (st) => st.isDirectory(),
    () => false,
  );
  return isDir ? { dir, rev: spec.slice(at + 1) } : undefined;
}
