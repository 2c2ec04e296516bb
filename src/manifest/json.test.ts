import { describe, expect, it } from 'vitest';
import { errorOf } from '../../test/helpers.js';
import { checkJsonValue, JSON_MAX_DEPTH, jsonPointer, parseJson } from './json.js';

const where = '.cloudlet/manifest';

describe('parseJson', () => {
  it('parses what JSON.parse parses, a leading BOM included', () => {
    const text = '\ufeff{"a": [1, -2.5e3, true, false, null, "x\\u00e9\\n"], "b": {}}';
    expect(parseJson(text, { where })).toEqual({ a: [1, -2500, true, false, null, 'xé\n'], b: {} });
  });

  it.each([
    ['{\n  "a": }', 2, 8, /unexpected "}" \(expected a value\)/],
    ['{"a": 1', 1, 8, /unexpected end of input/],
    ['{"a": 1,}', 1, 9, /expected a property name/],
    ['[1 2]', 1, 4, /expected ',' or '\]'/],
    ['{"a" 1}', 1, 6, /expected ':'/],
    ['"abc', 1, 1, /string not closed/],
    ['{} x', 1, 4, /after the end of the value/],
    ['{"a": "\t"}', 1, 8, /control character/],
    ['', 1, 1, /unexpected end of input/],
    ['01', 1, 2, /after the end/],
  ])('reports %j at line %i column %i', (text, line, column, what) => {
    const err = errorOf(() => parseJson(text, { where }));
    expect(err.code).toBe('EMANIFEST');
    expect(err.where).toBe(where);
    expect(err.message).toContain(`invalid JSON at line ${line}, column ${column}:`);
    expect(err.message).toMatch(what);
  });

  it('uses the error code it is given', () => {
    expect(errorOf(() => parseJson('{', { where: 'configuration', code: 'ECONFIG' })).code).toBe('ECONFIG');
  });

  it('refuses absurd nesting before parsing, without a stack overflow', () => {
    const deep = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    const err = errorOf(() => parseJson(deep, { where }));
    expect(err.message).toMatch(/nesting deeper than 64 levels/);
    const ok = `${'['.repeat(JSON_MAX_DEPTH)}${']'.repeat(JSON_MAX_DEPTH)}`;
    expect(() => parseJson(ok, { where })).not.toThrow();
    expect(() => parseJson(`[${ok}]`, { where })).toThrow(/nesting/);
  });

  it.each(['__proto__', 'constructor', 'prototype'])(
    'refuses the key %s anywhere, naming its pointer',
    (key) => {
      const err = errorOf(() => parseJson(`{"args": {"a": [{"${key}": {"polluted": true}}]}}`, { where }));
      expect(err.message).toMatch(new RegExp(`^/args/a/0/${key}: the key "${key}" is not allowed`));
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    },
  );
});

describe('checkJsonValue', () => {
  it('refuses deep values handed over directly, even cyclic ones', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => checkJsonValue(cyclic, { where, code: 'ECONFIG' })).toThrow(/nesting deeper/);
  });
});

describe('jsonPointer', () => {
  it('escapes ~ and /', () => {
    expect(jsonPointer(['a/b', 'c~d', 3])).toBe('/a~1b/c~0d/3');
  });
});
