// From a parsed JSON value to a `Manifest`: schema check, defaults, normalised paths and `args`, and the
// rules a JSON Schema cannot say well (regexes compile, version ranges parse, per-type entry point fields).

import { checkSchemaPatterns, compileStrangerSchema } from '../config/stranger-schema.js';
import { CloudletsError } from '../errors.js';
import { formatAjvErrors } from './ajv-errors.js';
import type { EntryPoint, Manifest } from './index.js';
import { cloneJsonValue, jsonPointer } from './json.js';
import { isKernelRange } from './kernel.js';
import { compileVolatilePatterns } from './patterns.js';
import { knownTopLevelFields } from './schema-json.js';
import { manifestValidator } from './validators.js';

export interface ValidateManifestOptions {
  /** Named in errors and warnings: `.cloudlet/manifest` or the off-band file. */
  where: string;
  /** Unknown top-level fields are errors rather than warnings. */
  strict?: boolean;
}

/** What the schema guarantees once defaults are filled in, before `args` and paths are normalised. */
interface RawManifest {
  args: Record<string, unknown>;
  templates: string[];
  persistent: string[];
  volatile: string[];
  entrypoints: EntryPoint[];
  [extra: string]: unknown;
}

/** `/etc//x/./y` → `/etc/x/y`; the schema has already refused `..` components and relative paths. */
function normaliseImagePath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  return `/${parts.join('/')}`;
}

/**
 * The shorthand `{foo: {type: "string"}}` means `{type: "object", properties: {foo: ...}}`; a value whose
 * `type` is the string "object" is already a full schema (a shorthand property named `type` would be a schema
 * object, not a string).
 */
export function normaliseArgs(args: Record<string, unknown>, where: string): Manifest['args'] {
  if (args.type === 'object') {
    const properties = args.properties === undefined ? {} : args.properties;
    return { ...args, type: 'object', properties: properties as Record<string, unknown> };
  }
  for (const [name, schema] of Object.entries(args)) {
    if (
      typeof schema !== 'boolean' &&
      (schema === null || typeof schema !== 'object' || Array.isArray(schema))
    ) {
      const hint =
        name === 'type'
          ? 'a full args schema must have "type": "object"'
          : 'each argument is a JSON Schema object, such as {"type": "string"}';
      throw new CloudletsError('EMANIFEST', `${jsonPointer(['args', name])}: must be a schema object`, {
        where,
        hint,
      });
    }
  }
  return { type: 'object', properties: { ...args } };
}

function checkEntryPoint(ep: EntryPoint, index: number, where: string): void {
  const fail = (field: string, message: string): never => {
    throw new CloudletsError('EMANIFEST', `${jsonPointer(['entrypoints', index, field])}: ${message}`, {
      where,
    });
  };
  if (ep.type !== 'kernel') {
    if (ep.initrd !== undefined) fail('initrd', 'only a kernel entry point has an initrd');
    if (ep.cmdline !== undefined) fail('cmdline', 'only a kernel entry point has a cmdline (use command)');
  } else if (ep.command !== undefined) {
    fail('command', 'a kernel entry point has a cmdline, not a command');
  }
  const range = ep.requires?.kernel;
  if (range !== undefined && !isKernelRange(range)) {
    throw new CloudletsError(
      'EMANIFEST',
      `${jsonPointer(['entrypoints', index, 'requires', 'kernel'])}: must be a version range such as ">=2.6.32"`,
      { where },
    );
  }
}

/** Validates a parsed manifest; returns a new, normalised object (the input is not modified). */
export function validateManifest(
  value: unknown,
  opts: ValidateManifestOptions,
): { manifest: Manifest; warnings: string[] } {
  const { where } = opts;
  const data = cloneJsonValue(value, { where, code: 'EMANIFEST' });
  const validate = manifestValidator();
  if (!validate(data)) {
    throw new CloudletsError('EMANIFEST', formatAjvErrors(validate.errors), { where });
  }
  const raw = data as RawManifest;

  const warnings: string[] = [];
  for (const key of Object.keys(raw)) {
    if (knownTopLevelFields().includes(key)) continue;
    if (opts.strict) {
      throw new CloudletsError('EMANIFEST', `${jsonPointer([key])}: unknown field (refused in strict mode)`, {
        where,
      });
    }
    warnings.push(`${where}: ${jsonPointer([key])}: unknown field, ignored (a newer cloudlets may know it)`);
  }

  // Compiled and screened for catastrophic backtracking now, so that every command refuses such a manifest.
  compileVolatilePatterns(raw.volatile, where);
  raw.entrypoints.forEach((ep, i) => {
    checkEntryPoint(ep, i, where);
  });

  // Screened before normalising, so that pointers name the fields as the author wrote them.
  checkSchemaPatterns(raw.args, { where, code: 'EMANIFEST', pointerPrefix: ['args'] });
  const args = normaliseArgs(raw.args, where);
  // Compiled here so that a broken args schema is the manifest's error, found before any configuration.
  compileStrangerSchema(args, { where, code: 'EMANIFEST', pointerPrefix: ['args'] });

  const manifest: Manifest = {
    ...raw,
    args,
    templates: raw.templates.map(normaliseImagePath),
    persistent: raw.persistent.map(normaliseImagePath),
    entrypoints: raw.entrypoints.map((ep) => ({
      ...ep,
      path: normaliseImagePath(ep.path),
      ...(ep.initrd === undefined ? {} : { initrd: normaliseImagePath(ep.initrd) }),
    })),
  };
  return { manifest, warnings };
}
