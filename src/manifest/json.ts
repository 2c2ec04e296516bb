/**
 * JSON from strangers: manifests, configurations and arguments all pass through `parseJson`, which
 * - checks the syntax itself before `JSON.parse`, because Node 20's messages often give no position and a
 *   user needs the line and column;
 * - rejects nesting deeper than `JSON_MAX_DEPTH` before anything recursive touches the value;
 * - rejects the keys `__proto__`, `constructor` and `prototype` anywhere, so no later merge or template can
 *   be steered into an object's prototype (`JSON.parse` makes an own `__proto__` property, which a careless
 *   `Object.assign` or spread would turn into a prototype change).
 */
import { CloudletsError, type ErrorCode } from '../errors.js';

/** Objects and arrays may nest this deep; deeper input is refused before it is parsed. */
export const JSON_MAX_DEPTH = 64;

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export interface JsonCheckOptions {
  /** The file or input named in errors: `.cloudlet/manifest`, `configuration`, a host path. */
  where: string;
  /** The error code to throw with; default `EMANIFEST`. */
  code?: ErrorCode;
}

/** A JSON pointer (RFC 6901) from path segments: `['templates', 2]` → `/templates/2`. */
export function jsonPointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => `/${String(s).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** Prefixes a message with its pointer, leaving the root (empty pointer) unnamed. */
export function atPointer(pointer: string, message: string): string {
  return pointer === '' ? message : `${pointer}: ${message}`;
}

/** Parses JSON text; throws a CloudletsError naming `where`, the line and column, or the JSON pointer. */
export function parseJson(text: string, opts: JsonCheckOptions): unknown {
  const source = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  checkSyntax(source, opts);
  const value: unknown = JSON.parse(source);
  checkJsonValue(value, opts);
  return value;
}

/**
 * Checks an already-parsed value (also one handed to the library directly): depth and forbidden keys.
 * Throws a CloudletsError naming the JSON pointer.
 */
export function checkJsonValue(value: unknown, opts: JsonCheckOptions): void {
  const code = opts.code ?? 'EMANIFEST';
  const walk = (v: unknown, path: (string | number)[]): void => {
    if (v === null || typeof v !== 'object') return;
    if (path.length >= JSON_MAX_DEPTH) {
      throw new CloudletsError(
        code,
        atPointer(jsonPointer(path), `nesting deeper than ${JSON_MAX_DEPTH} levels is refused`),
        { where: opts.where },
      );
    }
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        walk(item, [...path, i]);
      });
      return;
    }
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) {
        throw new CloudletsError(
          code,
          `${jsonPointer([...path, key])}: the key "${key}" is not allowed (it could alter object prototypes)`,
          { where: opts.where },
        );
      }
      walk((v as Record<string, unknown>)[key], [...path, key]);
    }
  };
  walk(value, []);
}

/**
 * A private copy for Ajv to fill defaults into, after `checkJsonValue`. A value that is not data (a function,
 * a symbol) cannot be copied and is refused as such.
 */
export function cloneJsonValue(value: unknown, opts: JsonCheckOptions): unknown {
  checkJsonValue(value, opts);
  try {
    return structuredClone(value);
  } catch (err) {
    throw new CloudletsError(opts.code ?? 'EMANIFEST', `is not JSON data: ${(err as Error).message}`, {
      where: opts.where,
      cause: err,
    });
  }
}

/** Line and column (both from 1) of a UTF-16 offset in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const HEX4 = /[0-9a-fA-F]{4}/y;

type State = 'value' | 'afterValue' | 'keyOrEnd' | 'key' | 'colon' | 'valueOrEnd';

/**
 * An iterative RFC 8259 syntax check (no recursion, so any nesting is safe to scan) that also enforces the
 * depth limit. Kept here rather than taken from a library: it is small, and it is what gives positions.
 */
function checkSyntax(text: string, opts: JsonCheckOptions): void {
  const code = opts.code ?? 'EMANIFEST';
  const fail = (at: number, what: string): never => {
    const { line, column } = lineColumn(text, at);
    throw new CloudletsError(code, `invalid JSON at line ${line}, column ${column}: ${what}`, {
      where: opts.where,
    });
  };
  const describe = (at: number) =>
    at >= text.length ? 'unexpected end of input' : `unexpected ${JSON.stringify(text[at])}`;
  const stack: ('{' | '[')[] = [];
  let state: State = 'value';
  let i = 0;
  const n = text.length;

  const skipSpace = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const scanString = () => {
    const start = i;
    i++; // opening quote
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail(i, 'control character in a string (escape it)');
      if (c === 0x5c) {
        const e = text[i + 1];
        if (e === 'u') {
          HEX4.lastIndex = i + 2;
          if (!HEX4.test(text)) fail(i, 'bad \\u escape in a string');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) {
          i += 2;
        } else {
          fail(i, 'bad escape in a string');
        }
      } else {
        i++;
      }
    }
    fail(start, 'string not closed');
  };
  const closeContainer = () => {
    stack.pop();
    i++;
    state = 'afterValue';
  };

  for (;;) {
    skipSpace();
    const ch = text[i];
    switch (state) {
      case 'value':
      case 'valueOrEnd': {
        if (state === 'valueOrEnd' && ch === ']') {
          closeContainer();
          break;
        }
        if (ch === '{' || ch === '[') {
          if (stack.length >= JSON_MAX_DEPTH)
            fail(i, `nesting deeper than ${JSON_MAX_DEPTH} levels is refused`);
          stack.push(ch);
          i++;
          state = ch === '{' ? 'keyOrEnd' : 'valueOrEnd';
          break;
        }
        if (ch === '"') {
          scanString();
        } else if (ch === 't' || ch === 'f' || ch === 'n') {
          const word = ch === 't' ? 'true' : ch === 'f' ? 'false' : 'null';
          if (!text.startsWith(word, i)) fail(i, `${describe(i)} (expected a value)`);
          i += word.length;
        } else {
          NUMBER.lastIndex = i;
          if (!NUMBER.test(text)) fail(i, `${describe(i)} (expected a value)`);
          i = NUMBER.lastIndex;
        }
        state = 'afterValue';
        break;
      }
      case 'afterValue': {
        const top = stack[stack.length - 1];
        if (top === undefined) {
          if (i < n) fail(i, `${describe(i)} after the end of the value`);
          return;
        }
        if (ch === ',') {
          i++;
          state = top === '{' ? 'key' : 'value';
        } else if ((top === '{' && ch === '}') || (top === '[' && ch === ']')) {
          closeContainer();
        } else {
          fail(i, `${describe(i)} (expected ',' or '${top === '{' ? '}' : ']'}')`);
        }
        break;
      }
      case 'keyOrEnd':
      case 'key': {
        if (state === 'keyOrEnd' && ch === '}') {
          closeContainer();
          break;
        }
        if (ch !== '"') fail(i, `${describe(i)} (expected a property name in double quotes)`);
        scanString();
        state = 'colon';
        break;
      }
      case 'colon': {
        if (ch !== ':') fail(i, `${describe(i)} (expected ':')`);
        i++;
        state = 'value';
        break;
      }
    }
  }
}
