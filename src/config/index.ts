// A configuration: the user's `args`, checked against the manifest's args schema with defaults filled in,
// plus the configuration environment (dns, ip, hostname, anything else a template may want).
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { CloudletsError } from '../errors.js';
import { formatAjvErrors } from '../manifest/ajv-errors.js';
import { JSON_SCHEMA_DIALECT } from '../manifest/constants.js';
import type { Manifest } from '../manifest/index.js';
import { cloneJsonValue } from '../manifest/json.js';
import { compileAround } from './stranger-schema.js';

export { MAX_PATTERN_LENGTH, unsafePatternReason } from './stranger-schema.js';

/**
 * A configuration: `args` (the user's arguments, validated against the manifest's `args` schema, defaults
 * filled in) plus the configuration environment (`dns`, `ip`, `hostname`, ...).
 */
export interface Configuration {
  args: Record<string, unknown>;
  [environment: string]: unknown;
}

export interface ValidateConfigOptions {
  /** Named in errors: the `@FILE` path, `-` for standard input; default `configuration`. */
  where?: string;
}

/** The JSON Schema a configuration of this image must satisfy. */
export function configurationSchema(manifest: Manifest): Record<string, unknown> {
  return {
    $schema: JSON_SCHEMA_DIALECT,
    title: manifest.name === undefined ? 'cloudlets configuration' : `configuration of ${manifest.name}`,
    type: 'object',
    properties: {
      args: { ...manifest.args, default: {} },
      dns: {
        type: 'object',
        description: 'The DNS environment.',
        properties: { nameservers: { type: 'array', items: { type: 'string' } } },
      },
      ip: {
        type: 'object',
        description: 'The network environment.',
        properties: { interfaces: { type: 'array' } },
      },
      hostname: { type: 'string' },
    },
    // The environment is open: templates may use any key a deployment provides.
    additionalProperties: true,
  };
}

// Compiled once per manifest object; a WeakMap so that manifests (and their validators) can be collected.
const configValidators = new WeakMap<Manifest, ValidateFunction>();
const argsValidators = new WeakMap<Manifest, ValidateFunction>();

function cached(
  cache: WeakMap<Manifest, ValidateFunction>,
  manifest: Manifest,
  schema: Record<string, unknown>,
  pointerPrefix: string[],
): ValidateFunction {
  let validate = cache.get(manifest);
  if (!validate) {
    // A manifest loaded by loadManifest has had its args screened and compiled already; a hand-made one
    // gets the same screening here, reported as the manifest's fault.
    validate = compileAround(schema, manifest.args, { where: 'manifest', code: 'EMANIFEST', pointerPrefix });
    cache.set(manifest, validate);
  }
  return validate;
}

function run(validate: ValidateFunction, input: unknown, where: string): unknown {
  // Ajv fills defaults in place: work on a copy so the caller's object is left alone.
  const data = cloneJsonValue(input, { where, code: 'ECONFIG' });
  if (!validate(data)) throw new CloudletsError('ECONFIG', formatAjvErrors(validate.errors), { where });
  return data;
}

/** Validates a whole configuration; throws CloudletsError ECONFIG naming the JSON pointer. */
export function validateConfiguration(
  manifest: Manifest,
  input: unknown,
  opts: ValidateConfigOptions = {},
): Configuration {
  const validate = cached(configValidators, manifest, configurationSchema(manifest), []);
  return run(validate, input, opts.where ?? 'configuration') as Configuration;
}

/** Validates only the user arguments. */
export function validateArgs(
  manifest: Manifest,
  args: unknown,
  opts: ValidateConfigOptions = {},
): Record<string, unknown> {
  const validate = cached(argsValidators, manifest, manifest.args, ['args']);
  return run(validate, args, opts.where ?? 'arguments') as Record<string, unknown>;
}
