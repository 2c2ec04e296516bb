/**
 * The `args` schema is written by the manifest's author, a stranger. It is compiled by a fresh Ajv per
 * manifest (no shared state, no remote `$ref` loading: Ajv only fetches with a `loadSchema` we never give),
 * and its regular expressions are screened first, because Ajv runs `pattern` and `patternProperties` on every
 * configuration and a backtracking pattern would hang on a long value.
 *
 * The screen is a deliberately simple rule, documented as such: a pattern is refused when it is longer than
 * `MAX_PATTERN_LENGTH` characters, when it does not compile, or when a group that contains an unbounded
 * quantifier (`+`, `*`, `{n,}`) is itself repeated without bound, as in `(a+)+` or `(\d*)*`. It does not catch
 * every slow pattern (overlapping alternatives like `(a|a)*` pass); it catches the classic ones.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { CloudletsError, type ErrorCode } from '../errors.js';
import { jsonPointer } from '../manifest/json.js';
import { backtrackingRisk } from '../manifest/patterns.js';
import { metaSchemaValidator } from '../manifest/validators.js';

export const MAX_PATTERN_LENGTH = 1000;

/**
 * A fresh Ajv for one stranger's schema: defaults filled in, unknown keywords and formats tolerated. The
 * schema is checked against the meta-schema before (checkMetaSchema), by the precompiled validator: Ajv's
 * own check would compile the whole draft 2020-12 meta-schema first, ~50 ms of every start-up.
 */
/**
 * `meta`: with the draft's meta-schemas, which only a schema referring to them needs (they are checked
 * against it by checkMetaSchema, not by this instance). Adding them parses their URIs: ~10 ms of every
 * command that loads a manifest (measured), so they are added only when a compile asks for them.
 */
function strangerAjv(meta: boolean): Ajv2020 {
  return new Ajv2020({
    strict: false,
    useDefaults: true,
    allErrors: false,
    logger: false,
    validateFormats: false,
    validateSchema: false,
    meta,
  });
}

function compileWithAjv(schema: Record<string, unknown>): ValidateFunction {
  try {
    return strangerAjv(false).compile(schema);
  } catch (err) {
    if (!(err instanceof Ajv2020.MissingRefError)) throw err;
    return strangerAjv(true).compile(schema);
  }
}

/** Throws Ajv's own message (`schema is invalid: data/... must be ...`) when `schema` breaks the meta-schema. */
function checkMetaSchema(schema: Record<string, unknown>): void {
  const validate = metaSchemaValidator();
  if (validate(schema)) return;
  const problems = (validate.errors ?? []).map((e) => `data${e.instancePath} ${e.message ?? 'is invalid'}`);
  throw new Error(`schema is invalid: ${problems.join(', ')}`);
}

/** Why `source` is refused, or undefined when it passes the screen. */
export function unsafePatternReason(source: string): string | undefined {
  if (source.length > MAX_PATTERN_LENGTH) return `longer than ${MAX_PATTERN_LENGTH} characters`;
  try {
    new RegExp(source, 'u');
  } catch (err) {
    return `not a valid regular expression (${(err as Error).message})`;
  }
  // The same screen as volatile patterns: one rule for every regular expression a stranger writes.
  let risk: string | undefined;
  try {
    risk = backtrackingRisk(source);
  } catch (err) {
    return `cannot be analysed (${(err as Error).message})`;
  }
  return risk === undefined ? undefined : `may backtrack catastrophically: ${risk}`;
}

/** Where a stranger's schema sits, for errors: the file, the error code, the JSON pointer to it. */
export interface SchemaOptions {
  where: string;
  code: ErrorCode;
  pointerPrefix: (string | number)[];
}

/** Throws when any `pattern` or `patternProperties` key in the schema fails the screen. */
export function checkSchemaPatterns(schema: unknown, opts: SchemaOptions): void {
  const fail = (path: (string | number)[], pattern: string, reason: string): never => {
    throw new CloudletsError(
      opts.code,
      `${jsonPointer(path)}: the pattern ${JSON.stringify(pattern.slice(0, 80))} is refused: ${reason}`,
      { where: opts.where },
    );
  };
  const walk = (node: unknown, path: (string | number)[]): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      node.forEach((n, i) => {
        walk(n, [...path, i]);
      });
      return;
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === 'pattern' && typeof value === 'string') {
        const reason = unsafePatternReason(value);
        if (reason) fail([...path, key], value, reason);
      }
      if (key === 'patternProperties' && value !== null && typeof value === 'object') {
        for (const p of Object.keys(value)) {
          const reason = unsafePatternReason(p);
          if (reason) fail([...path, key, p], p, reason);
        }
      }
      walk(value, [...path, key]);
    }
  };
  walk(schema, opts.pointerPrefix);
}

/** Schemas screened and compiled so far, with their validators (a manifest's args: at load). */
const screened = new WeakMap<object, ValidateFunction>();

/**
 * Screens and compiles a stranger's schema; a schema Ajv refuses becomes a CloudletsError at `pointer`.
 * The same schema object is compiled once.
 */
export function compileStrangerSchema(
  schema: Record<string, unknown>,
  opts: SchemaOptions,
): ValidateFunction {
  const known = screened.get(schema);
  if (known) return known;
  checkSchemaPatterns(schema, opts);
  const validate = compileOrRefuse(schema, opts);
  screened.set(schema, validate);
  return validate;
}

function compileOrRefuse(schema: Record<string, unknown>, opts: SchemaOptions): ValidateFunction {
  try {
    checkMetaSchema(schema);
    return compileWithAjv(schema);
  } catch (err) {
    throw new CloudletsError(
      opts.code,
      `${jsonPointer(opts.pointerPrefix) || '/'}: not a usable JSON Schema: ${(err as Error).message}`,
      { where: opts.where, cause: err },
    );
  }
}
