// CONTRACT STUB (owner: manifest/config helper). Signatures are fixed; bodies to be written.
import type { ImageSource } from '../stream/entry.js';

export interface EntryPointRequirements {
  arch?: string | string[];
  /** A semver-style range on the kernel version, e.g. ">=2.6.32". */
  kernel?: string;
  commands?: string[];
}

export interface EntryPoint {
  type: 'kernel' | 'init' | 'chroot';
  /** Image path of the kernel, the init program, or the command run in a chroot. */
  path: string;
  initrd?: string;
  cmdline?: string;
  command?: string[];
  requires?: EntryPointRequirements;
}

/** A manifest as the rest of the code sees it: validated, defaults filled in, `args` normalised. */
export interface Manifest {
  name?: string;
  description?: string;
  author?: string;
  version?: string;
  arch?: string;
  /** Always a full JSON Schema object: the shorthand `{foo: {type: "string"}}` is expanded. */
  args: { type: 'object'; properties: Record<string, unknown>; [k: string]: unknown };
  templates: string[];
  persistent: string[];
  volatile: string[];
  entrypoints: EntryPoint[];
  [extra: string]: unknown;
}

export interface LoadedManifest {
  manifest: Manifest;
  /** Where it came from, for messages: `.cloudlet/manifest` or the off-band file's path. */
  where: string;
  /** Unknown top-level fields and other non-fatal remarks. */
  warnings: string[];
}

export interface LoadManifestOptions {
  /** An off-band manifest file on the host, instead of `/.cloudlet/manifest` in the image. */
  manifestFile?: string;
  /** Unknown top-level fields become errors. */
  strict?: boolean;
}

export const MANIFEST_PATH = '/.cloudlet/manifest';

export async function loadManifest(
  _source: ImageSource,
  _opts: LoadManifestOptions = {},
): Promise<LoadedManifest> {
  throw new Error('not implemented');
}
