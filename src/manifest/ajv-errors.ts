// Turns Ajv's first error into one line a user can act on: "<JSON pointer>: <what was expected>".
import type { ErrorObject } from 'ajv/dist/2020.js';
import { IMAGE_PATH_PATTERN } from './constants.js';
import { atPointer } from './json.js';

const ARTICLE: Record<string, string> = {
  string: 'a string',
  object: 'an object',
  array: 'an array',
  integer: 'an integer',
  number: 'a number',
  boolean: 'a boolean',
  null: 'null',
};

const typeNames = (type: unknown): string[] =>
  String(type)
    .split(',')
    .map((t) => ARTICLE[t] ?? t);

function describe(err: ErrorObject): string {
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'type':
      return `must be ${typeNames(p.type).join(' or ')}`;
    case 'required':
      return `missing required field ${JSON.stringify(p.missingProperty)}`;
    case 'additionalProperties':
      return `unknown field ${JSON.stringify(p.additionalProperty)}`;
    case 'enum':
      return `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `must be ${JSON.stringify(p.allowedValue)}`;
    case 'pattern':
      return p.pattern === IMAGE_PATH_PATTERN
        ? "must be an absolute image path (starting with '/', without '..' components or NUL bytes)"
        : `must match the pattern ${JSON.stringify(p.pattern)}`;
    default:
      return err.message ?? `fails the "${err.keyword}" rule`;
  }
}

/**
 * Ajv reports an `anyOf` failure after the failures of each branch; for the common "a string or an array"
 * unions, one combined line reads better than the first branch's complaint.
 */
export function formatAjvErrors(errors: readonly ErrorObject[] | null | undefined): string {
  const list = errors ?? [];
  const anyOf = list.find((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  if (anyOf) {
    const types = list
      .filter((e) => e.keyword === 'type' && e.instancePath === anyOf.instancePath)
      .flatMap((e) => typeNames((e.params as Record<string, unknown>).type));
    if (types.length > 1) return atPointer(anyOf.instancePath, `must be ${[...new Set(types)].join(' or ')}`);
    // One branch got further into the value (an array of the wrong items): its complaint is the useful one.
    const deeper = list.find((e) => e.instancePath.length > anyOf.instancePath.length);
    if (deeper) return atPointer(deeper.instancePath, describe(deeper));
  }
  const first = list[0];
  if (!first) return 'is invalid';
  return atPointer(first.instancePath, describe(first));
}
