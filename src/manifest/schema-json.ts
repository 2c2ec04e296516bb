/**
 * The manifest's JSON Schema at run time: the committed schema/manifest.schema.json, generated from the
 * TypeBox source in schema.ts and kept equal to it by a test. Reading the file rather than building it
 * keeps TypeBox (about 100 ms to import) out of every command's start-up.
 */
import { readFileSync } from 'node:fs';

const SCHEMA_FILE = new URL('../../schema/manifest.schema.json', import.meta.url);

let text: string | undefined;

/** The published JSON Schema: a fresh object each call, safe to hand to Ajv (which may annotate it). */
export function manifestJsonSchema(): Record<string, unknown> {
  text ??= readFileSync(SCHEMA_FILE, 'utf8');
  return JSON.parse(text) as Record<string, unknown>;
}

let known: readonly string[] | undefined;

/** The top-level fields the format defines; others are warned about (or refused in strict mode). */
export function knownTopLevelFields(): readonly string[] {
  known ??= Object.keys((manifestJsonSchema().properties ?? {}) as Record<string, unknown>);
  return known;
}
