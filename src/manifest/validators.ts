/**
 * The precompiled validators (see standalone.ts for why they are precompiled), loaded on first use from
 * the committed files under schema/ (through schema/validators.cjs). Their code is Ajv's own output for our schemas, nothing a user gives.
 */
import type { ErrorObject } from 'ajv/dist/2020.js';
import * as files from '../../schema/validators.cjs';

export type PrecompiledValidator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

export const MANIFEST_VALIDATOR_FILE = new URL('../../schema/manifest.validate.cjs', import.meta.url);
export const META_SCHEMA_VALIDATOR_FILE = new URL(
  '../../schema/json-schema-2020-12.validate.cjs',
  import.meta.url,
);

/** Validates a manifest against the manifest schema, filling in defaults. */
export function manifestValidator(): PrecompiledValidator {
  return files.manifestValidator();
}

/** Validates a JSON Schema against the draft 2020-12 meta-schema; changes nothing in it. */
export function metaSchemaValidator(): PrecompiledValidator {
  return files.metaSchemaValidator();
}
