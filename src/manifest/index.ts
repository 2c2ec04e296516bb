// The manifest: its types, and the public API of src/manifest (loading, validating, the JSON Schema).
export { formatAjvErrors } from './ajv-errors.js';
export { IMAGE_PATH_PATTERN, MANIFEST_SCHEMA_ID } from './constants.js';
export { checkJsonValue, JSON_MAX_DEPTH, jsonPointer, parseJson } from './json.js';
export { kernelSatisfies } from './kernel.js';
export { loadManifest, MANIFEST_PATH, MANIFEST_WHERE, MAX_MANIFEST_BYTES } from './load.js';
export { manifestJsonSchema } from './schema-json.js';
export { type ValidateManifestOptions, validateManifest } from './validate.js';

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
