/**
 * Templates that only put values in place: literal text and `<%= name.path %>` or `<%- name.path %>`
 * tags naming a value of `args`, `config` or `manifest`, as most configuration files need
 * (`<%= args.hostname %>`). Such a template runs no code, so it needs no sandbox: it is filled in here,
 * with the result the sandbox gives (./sandbox.ts), which spares the renderer's child process (a second
 * Node: ~60 ms of CPU to start, while an export is busiest) when every template of an image is plain.
 *
 * Exactly the same output, or none: anything this does not know for certain (another kind of tag, a
 * name that is not an own property of plain data, a value that is not a string, number, boolean or
 * null, text holding `<%` or `%>`, whose meaning ejs decides) goes to the sandbox as before.
 */

/** What the sandbox's templates see under the three fixed names. */
export interface PlainScope {
  args: unknown;
  config: unknown;
  manifest: unknown;
}

/** The fixed names as the sandbox makes them from the render's data (JSON: the same values). */
export function plainScope(dataJson: string): PlainScope {
  const data = JSON.parse(dataJson) as { configuration?: unknown; manifest?: unknown };
  const configuration =
    data.configuration !== null && typeof data.configuration === 'object' ? data.configuration : {};
  const args = (configuration as { args?: unknown }).args;
  return {
    args: args !== null && typeof args === 'object' ? args : {},
    config: configuration,
    manifest: data.manifest,
  };
}

/**
 * A tag ejs reads as output of one expression: `<%=` or `<%-`, then the expression, then `%>` with no
 * `-` or `_` before it (ejs would read `-%>` or `_%>`, which trim what follows).
 */
const TAG = /<%([=-])[ \t]*([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)[ \t]*%>/g;
const NAMES = new Set(['args', 'config', 'manifest']);
/** The sandbox refuses larger outputs (with an error this leaves it to give). */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/** The rendered text of a plain template, or undefined when the sandbox must render it. */
export function renderPlain(text: string, scope: PlainScope): string | undefined {
  let out = '';
  let at = 0;
  TAG.lastIndex = 0;
  for (let m = TAG.exec(text); m !== null; m = TAG.exec(text)) {
    const literal = text.slice(at, m.index);
    const end = m.index + m[0].length;
    // `_%>` right after a name that ends in `_`: ejs reads a trimming close.
    if (!isPlainText(literal) || text[end - 3] === '_') return undefined;
    const value = lookUp(scope, m[2] as string);
    if (value === undefined) return undefined;
    out += literal + value;
    at = end;
  }
  const rest = text.slice(at);
  if (!isPlainText(rest)) return undefined;
  out += rest;
  return Buffer.byteLength(out, 'utf8') > MAX_OUTPUT_BYTES ? undefined : out;
}

/** Text ejs passes through unchanged: no delimiter in it. */
function isPlainText(text: string): boolean {
  return !text.includes('<%') && !text.includes('%>');
}

/** The value at `expression` as the tag prints it, or undefined when it is not certainly that. */
function lookUp(scope: PlainScope, expression: string): string | undefined {
  const [first, ...rest] = expression.split('.');
  if (!NAMES.has(first as string)) return undefined;
  let value: unknown = scope[first as keyof PlainScope];
  for (const key of rest) {
    if (value === null || typeof value !== 'object' || key === '__proto__' || !Object.hasOwn(value, key)) {
      return undefined;
    }
    value = (value as Record<string, unknown>)[key];
  }
  // `<%=` (escape: String, '' for null) and `<%-` (ejs appends unless null) print these alike.
  if (value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}
