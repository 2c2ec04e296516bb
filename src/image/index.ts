// Opening an image: a directory or a tar archive on the host, with its manifest loaded.
import { stat } from 'node:fs/promises';
import { CloudletsError } from '../errors.js';
import { type LoadedManifest, loadManifest } from '../manifest/index.js';
import type { ImageSource } from '../stream/entry.js';
import { openDirectorySource } from '../stream/sources/dir.js';

export interface OpenImageOptions {
  manifestFile?: string;
  strict?: boolean;
}

export interface Image extends LoadedManifest {
  source: ImageSource;
  kind: 'directory' | 'archive';
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

/** Opens a directory or a tar archive (plain, gzip, zstd; sniffed by content) and loads its manifest. */
export async function openImage(spec: string, opts: OpenImageOptions = {}): Promise<Image> {
  let kind: Image['kind'];
  try {
    const st = await stat(spec);
    if (st.isDirectory()) kind = 'directory';
    else if (st.isFile()) kind = 'archive';
    else throw new CloudletsError('ESOURCE', 'is neither a directory nor a tar archive', { where: spec });
  } catch (err) {
    if (err instanceof CloudletsError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new CloudletsError(
      'ESOURCE',
      code === 'ENOENT' ? 'no such image: not a directory or archive' : `cannot open the image (${code})`,
      { where: spec, hint: 'give an image directory or a tar archive (.tar, .tar.gz, .tar.zst)', cause: err },
    );
  }
  let source: ImageSource;
  if (kind === 'directory') {
    source = openDirectorySource(spec, { prune: isRootVcsDir });
  } else {
    const { openTarSource } = await import('../stream/sources/tar.js');
    source = await openTarSource(spec);
  }
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
