import { describe, expect, it } from 'vitest';
import { errorOf } from '../../test/helpers.js';
import type { CloudletsError } from '../errors.js';
import { formatAjvErrors } from '../manifest/ajv-errors.js';
import { validateManifest } from '../manifest/index.js';
import { configurationSchema, validateArgs, validateConfiguration } from './index.js';
import { compileStrangerSchema, unsafePatternReason } from './stranger-schema.js';

const manifestWith = (args: Record<string, unknown>) =>
  validateManifest({ args }, { where: '.cloudlet/manifest' }).manifest;
const hostnameManifest = manifestWith({ hostname: { type: 'string', default: 'noname' } });

describe('validateArgs', () => {
  it('fills a default when the value is missing', () => {
    expect(validateArgs(hostnameManifest, {})).toEqual({ hostname: 'noname' });
  });

  it('keeps a value that is given', () => {
    expect(validateArgs(hostnameManifest, { hostname: 'web1' })).toEqual({ hostname: 'web1' });
  });

  it('does not modify its input', () => {
    const input = {};
    validateArgs(hostnameManifest, input);
    expect(input).toEqual({});
  });

  it('names the pointer and the expectation', () => {
    const err = errorOf(() => validateArgs(hostnameManifest, { hostname: 42 }));
    expect(err.code).toBe('ECONFIG');
    expect(err.format()).toBe('arguments: /hostname: must be a string');
    expect(errorOf(() => validateArgs(hostnameManifest, [], { where: 'args.json' })).format()).toBe(
      'args.json: must be an object',
    );
  });
});

describe('validateConfiguration', () => {
  it('validates the whole configuration and fills args defaults', () => {
    const config = { dns: { nameservers: [] }, ip: { interfaces: [] }, args: {} };
    expect(validateConfiguration(hostnameManifest, config)).toEqual({
      dns: { nameservers: [] },
      ip: { interfaces: [] },
      args: { hostname: 'noname' },
    });
  });

  it('fills missing args with {} and then their defaults', () => {
    expect(validateConfiguration(hostnameManifest, {})).toEqual({ args: { hostname: 'noname' } });
  });

  it('accepts any configuration environment', () => {
    const config = { args: { hostname: 'a' }, hostname: 'a.example.org', site: { region: 'eu' } };
    expect(validateConfiguration(hostnameManifest, config)).toEqual(config);
  });

  it.each([
    [{ args: { hostname: 1 } }, 'configuration: /args/hostname: must be a string'],
    [{ args: [] }, 'configuration: /args: must be an object'],
    [{ dns: { nameservers: 'x' } }, 'configuration: /dns/nameservers: must be an array'],
    ['x', 'configuration: must be an object'],
  ])('refuses %j', (config, message) => {
    const err = errorOf(() => validateConfiguration(hostnameManifest, config));
    expect(err.code).toBe('ECONFIG');
    expect(err.format()).toBe(message);
  });

  it('names the @FILE it came from', () => {
    const err = errorOf(() =>
      validateConfiguration(hostnameManifest, { args: { hostname: [] } }, { where: 'c.json' }),
    );
    expect(err.format()).toBe('c.json: /args/hostname: must be a string');
  });

  it('refuses prototype keys and deep nesting, naming the pointer', () => {
    const polluted = JSON.parse('{"args": {}, "dns": {"__proto__": {"x": 1}}}');
    expect(errorOf(() => validateConfiguration(hostnameManifest, polluted)).message).toMatch(
      /^\/dns\/__proto__: the key "__proto__" is not allowed/,
    );
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    const err = errorOf(() => validateConfiguration(hostnameManifest, { deep }));
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toMatch(/nesting deeper than 64 levels/);
  });

  it('honours a full args schema with required fields', () => {
    const m = manifestWith({ type: 'object', properties: { port: { type: 'integer' } }, required: ['port'] });
    expect(errorOf(() => validateConfiguration(m, {})).message).toBe('/args: missing required field "port"');
    expect(validateConfiguration(m, { args: { port: 8080 } })).toEqual({ args: { port: 8080 } });
  });

  it('takes an args schema that names its draft or refers to its meta-schema', () => {
    const m = manifestWith({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: {
        name: { type: 'string', default: 'x' },
        // Any JSON Schema is a valid value here: the meta-schema itself, by reference.
        schema: { $ref: 'https://json-schema.org/draft/2020-12/schema' },
      },
    });
    expect(validateConfiguration(m, {})).toEqual({ args: { name: 'x' } });
    expect(validateConfiguration(m, { args: { schema: { type: 'string' } } }).args).toMatchObject({
      schema: { type: 'string' },
    });
    expect(errorOf(() => validateConfiguration(m, { args: { schema: { type: 12 } } })).message).toMatch(
      /^\/args\/schema/,
    );
  });
});

describe('validateConfiguration against configurationSchema', () => {
  // validateConfiguration does not compile the schema `cloudlets schema` prints: it must still give
  // exactly what that schema gives, data and message alike.
  const manifest = manifestWith({
    type: 'object',
    properties: { hostname: { type: 'string', default: 'noname' }, port: { type: 'integer' } },
    required: ['port'],
  });
  const bySchema = (input: unknown): unknown => {
    const validate = compileStrangerSchema(configurationSchema(manifest), {
      where: 'manifest',
      code: 'EMANIFEST',
      pointerPrefix: [],
    });
    const data = structuredClone(input);
    return validate(data) ? data : `configuration: ${formatAjvErrors(validate.errors)}`;
  };
  const byUs = (input: unknown): unknown => {
    try {
      return validateConfiguration(manifest, input);
    } catch (err) {
      return (err as CloudletsError).format();
    }
  };
  it.each([
    [
      'valid',
      { args: { port: 22 }, dns: { nameservers: ['1.1.1.1'] }, ip: { interfaces: [] }, hostname: 'h' },
    ],
    ['args missing', {}],
    ['args of the wrong type', { args: [] }],
    ['an args field of the wrong type', { args: { port: 'x' } }],
    ['dns not an object', { args: { port: 1 }, dns: [] }],
    ['nameservers not an array', { args: { port: 1 }, dns: { nameservers: 'x' } }],
    ['a nameserver not a string', { args: { port: 1 }, dns: { nameservers: ['a', 2] } }],
    ['ip not an object', { args: { port: 1 }, ip: 'x' }],
    ['interfaces not an array', { args: { port: 1 }, ip: { interfaces: {} } }],
    ['hostname not a string', { args: { port: 1 }, hostname: 7 }],
    ['two faults: the first in schema order', { args: { port: 'x' }, hostname: 7 }],
    ['the environment open', { args: { port: 1 }, anything: { else: true } }],
    ['not an object', []],
    ['null', null],
  ])('%s', (_, input) => {
    expect(byUs(input)).toEqual(bySchema(input));
  });
});

describe('configurationSchema', () => {
  it("embeds the manifest's args and leaves the environment open", () => {
    const schema = configurationSchema(hostnameManifest) as { properties: Record<string, unknown> };
    expect(schema.properties.args).toEqual({
      type: 'object',
      properties: { hostname: { type: 'string', default: 'noname' } },
      default: {},
    });
    expect(schema).toMatchObject({ type: 'object', additionalProperties: true });
  });
});

describe('stranger regex screen', () => {
  it.each(['(a+)+', '^(\\d*)*$', '((ab)*c)+', '(?:[a-z]+)*', '(x+){2,}', '(a+){2}', '(a|b)*'])(
    'refuses %s',
    (p) => {
      expect(unsafePatternReason(p)).toMatch(/may backtrack catastrophically/);
    },
  );
  it.each(['^[a-z]+$', '(ab)+', '(a+)?', '(a|b){3}', '\\(a+\\)+', '[(a+)]+', '^\\d{1,3}(\\.\\d{1,3}){3}$'])(
    'accepts %s',
    (p) => {
      expect(unsafePatternReason(p)).toBeUndefined();
    },
  );
  it('refuses long and invalid patterns', () => {
    expect(unsafePatternReason('a'.repeat(1001))).toMatch(/longer than 1000/);
    expect(unsafePatternReason('(')).toMatch(/not a valid regular expression/);
  });
  it('checks patternProperties too, at manifest load', () => {
    expect(() => manifestWith({ type: 'object', patternProperties: { '^(a*)*$': {} } })).toThrow(
      /\/args\/patternProperties\/\^\(a\*\)\*\$: the pattern/,
    );
  });
});

describe('library callers', () => {
  it('refuses values that are not JSON data', () => {
    const err = errorOf(() => validateConfiguration(hostnameManifest, { args: {}, f: () => 1 }));
    expect(err.code).toBe('ECONFIG');
    expect(err.message).toMatch(/^is not JSON data/);
  });

  it('screens the args schema of a manifest that was not loaded through loadManifest', () => {
    const handMade = {
      ...hostnameManifest,
      args: { type: 'object' as const, properties: { a: { type: 'no-such-type' } } },
    };
    const err = errorOf(() => validateConfiguration(handMade, {}));
    expect(err.code).toBe('EMANIFEST');
    expect(err.message).toMatch(/not a usable JSON Schema/);
    const slow = {
      ...hostnameManifest,
      args: { type: 'object' as const, properties: { a: { pattern: '(a+)+$' } } },
    };
    expect(errorOf(() => validateArgs(slow, {})).message).toMatch(/may backtrack catastrophically/);
  });
});
