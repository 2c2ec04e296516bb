import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { IMAGE_PATH_PATTERN, JSON_SCHEMA_DIALECT, MANIFEST_SCHEMA_ID } from './constants.js';
import { buildManifestJsonSchema } from './schema.js';
import { manifestValidatorSource, metaSchemaValidatorSource } from './standalone.js';
import { MANIFEST_VALIDATOR_FILE, META_SCHEMA_VALIDATOR_FILE } from './validators.js';

const COMMITTED = new URL('../../schema/manifest.schema.json', import.meta.url);

describe('manifest JSON Schema', () => {
  it('matches the committed schema/manifest.schema.json (regenerate with `npm run gen:schema`)', async () => {
    await expect(`${JSON.stringify(buildManifestJsonSchema(), null, 2)}\n`).toMatchFileSnapshot(
      COMMITTED.pathname,
    );
  });

  // The runtime loads these instead of compiling at start-up: they must be what Ajv compiles today.
  it('precompiled manifest validator matches schema/manifest.validate.cjs (npm run gen:schema)', async () => {
    await expect(manifestValidatorSource(buildManifestJsonSchema())).toMatchFileSnapshot(
      MANIFEST_VALIDATOR_FILE.pathname,
    );
  });

  it('precompiled meta-schema validator matches schema/json-schema-2020-12.validate.cjs', async () => {
    await expect(metaSchemaValidatorSource()).toMatchFileSnapshot(META_SCHEMA_VALIDATOR_FILE.pathname);
  });

  it('is a draft 2020-12 schema with an $id, descriptions and examples', () => {
    const schema = JSON.parse(readFileSync(COMMITTED, 'utf8'));
    expect(schema.$schema).toBe(JSON_SCHEMA_DIALECT);
    expect(schema.$id).toBe(MANIFEST_SCHEMA_ID);
    for (const field of ['name', 'arch', 'args', 'templates', 'persistent', 'volatile', 'entrypoints']) {
      expect(schema.properties[field].description, field).toBeTypeOf('string');
    }
    expect(schema.properties.volatile.examples[0]).toContain('/tmp/.+');
    // Ajv in strict mode accepts it: no unknown keywords slipped in.
    expect(() => new Ajv2020({ strict: true }).compile(schema)).not.toThrow();
  });

  it.each([
    ['/etc/hostname', true],
    ['/', true],
    ['/a..b/..c', true],
    ['etc/hostname', false],
    ['/etc/../../x', false],
    ['/..', false],
    ['/a\n/../b', false],
    ['/a\u0000b', false],
  ])('image path pattern: %j → %s', (path, ok) => {
    expect(new RegExp(IMAGE_PATH_PATTERN, 'u').test(path)).toBe(ok);
  });
});
