// CONTRACT STUB (owner: manifest/config helper). Signatures are fixed; bodies to be written.
import type { Manifest } from '../manifest/index.js';

/**
 * A configuration: `args` (the user's arguments, validated against the manifest's `args` schema, defaults
 * filled in) plus the configuration environment (`dns`, `ip`, `hostname`, ...).
 */
export interface Configuration {
  args: Record<string, unknown>;
  [environment: string]: unknown;
}

/** Validates a whole configuration; throws CloudletsError ECONFIG naming the JSON pointer. */
export function validateConfiguration(_manifest: Manifest, _input: unknown): Configuration {
  throw new Error('not implemented');
}

/** Validates only the user arguments. */
export function validateArgs(_manifest: Manifest, _args: unknown): Record<string, unknown> {
  throw new Error('not implemented');
}

/** The JSON Schema a configuration of this image must satisfy. */
export function configurationSchema(_manifest: Manifest): Record<string, unknown> {
  throw new Error('not implemented');
}
