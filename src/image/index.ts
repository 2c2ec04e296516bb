// CONTRACT STUB (owner: directory-source helper). Signatures are fixed; bodies to be written.
import type { LoadedManifest } from '../manifest/index.js';
import type { ImageSource } from '../stream/entry.js';

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

/** Opens a directory or a tar archive (plain, gzip, zstd; sniffed by content) and loads its manifest. */
export async function openImage(_spec: string, _opts: OpenImageOptions = {}): Promise<Image> {
  throw new Error('not implemented');
}
