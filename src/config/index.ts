// A configuration: the user's `args`, checked against the manifest's args schema with defaults filled in,
// plus the configuration environment (dns, ip, hostname, anything else a template may want).
import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020.js';
import { CloudletsError } from '../errors.js';
import { formatAjvErrors } from '../manifest/ajv-errors.js';
import { JSON_SCHEMA_DIALECT } from '../manifest/constants.js';
import type { Manifest } from '../manifest/index.js';
import { cloneJsonValue } from '../manifest/json.js';
import { compileStrangerSchema } from './stranger-schema.js';

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

/**
 * The validator of the manifest's `args`. A manifest loaded by loadManifest had them screened and
 * compiled then (compileStrangerSchema keeps each schema's validator); a hand-made one gets the same
 * screening here, reported as the manifest's fault.
 */
const argsValidator = (manifest: Manifest): ValidateFunction =>
  compileStrangerSchema(manifest.args, { where: 'manifest', code: 'EMANIFEST', pointerPrefix: ['args'] });

function run(validate: ValidateFunction, input: unknown, where: string): unknown {
  // Ajv fills defaults in place: work on a copy so the caller's object is left alone.
  const data = cloneJsonValue(input, { where, code: 'ECONFIG' });
  if (!validate(data)) throw new CloudletsError('ECONFIG', formatAjvErrors(validate.errors), { where });
  return data;
}

/**
 * Validates a whole configuration; throws CloudletsError ECONFIG naming the JSON pointer. The same
 * verdict and message as configurationSchema's, got without compiling it: `args` goes through the
 * validator the manifest's loading compiled already, and the few fixed fields of the environment are
 * checked here (a second Ajv compile was a good part of an export's start, measured).
 */
export function validateConfiguration(
  manifest: Manifest,
  input: unknown,
  opts: ValidateConfigOptions = {},
): Configuration {
  const where = opts.where ?? 'configuration';
  const data = cloneJsonValue(input, { where, code: 'ECONFIG' });
  const fail = (errors: readonly ErrorObject[] | null | undefined): never => {
    throw new CloudletsError('ECONFIG', formatAjvErrors(errors), { where });
  };
  if (!isObject(data)) return fail([typeError('', 'object')]);
  // Filled in before it is checked, as Ajv's useDefaults does for a missing property.
  if (!Object.hasOwn(data, 'args')) data.args = {};
  const validateArgs = argsValidator(manifest);
  if (!validateArgs(data.args)) {
    return fail(validateArgs.errors?.map((e) => ({ ...e, instancePath: `/args${e.instancePath}` })));
  }
  const environmentError = checkEnvironment(data);
  if (environmentError) return fail([environmentError]);
  return data as Configuration;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** An error as Ajv reports a failed `type`, so that formatAjvErrors words it the same. */
const typeError = (instancePath: string, type: string): ErrorObject => ({
  instancePath,
  schemaPath: '',
  keyword: 'type',
  params: { type },
  message: `must be ${type}`,
});

/** configurationSchema's environment (`dns`, `ip`, `hostname`), in its order; the first failure. */
function checkEnvironment(data: Record<string, unknown>): ErrorObject | undefined {
  const { dns, ip, hostname } = data;
  if (dns !== undefined) {
    if (!isObject(dns)) return typeError('/dns', 'object');
    if (dns.nameservers !== undefined) {
      if (!Array.isArray(dns.nameservers)) return typeError('/dns/nameservers', 'array');
      const bad = dns.nameservers.findIndex((n) => typeof n !== 'string');
      if (bad >= 0) return typeError(`/dns/nameservers/${bad}`, 'string');
    }
  }
  if (ip !== undefined) {
    if (!isObject(ip)) return typeError('/ip', 'object');
    if (ip.interfaces !== undefined && !Array.isArray(ip.interfaces))
      return typeError('/ip/interfaces', 'array');
  }
  if (hostname !== undefined && typeof hostname !== 'string') return typeError('/hostname', 'string');
  return undefined;
}

/** Validates only the user arguments. */
export function validateArgs(
  manifest: Manifest,
  args: unknown,
  opts: ValidateConfigOptions = {},
): Record<string, unknown> {
  const validate = argsValidator(manifest);
  return run(validate, args, opts.where ?? 'arguments') as Record<string, unknown>;
}
