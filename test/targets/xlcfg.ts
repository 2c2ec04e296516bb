// A tiny xl.cfg parser for the tests, shared by the unit and the end-to-end tests.

type Value = string | number | string[];

/**
 * A tiny parser for the subset of xl.cfg(5) syntax we write (`xl` is rarely installed where tests run):
 * `key = value` lines, values a number, a double-quoted string with \\ and \" escapes, or a list of
 * strings in brackets; `#` comments. Throws on anything else.
 */
export function parseXlCfg(text: string): Record<string, Value> {
  const out: Record<string, Value> = {};
  const str = /"((?:[^"\\]|\\.)*)"/y;
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`line ${i + 1}: not key = value: ${line}`);
    const [, key, rest] = m as unknown as [string, string, string];
    const unquote = (s: string, at: number): [string, number] => {
      str.lastIndex = at;
      const q = str.exec(s);
      if (!q) throw new Error(`line ${i + 1}: expected a quoted string at ${at}: ${s}`);
      return [q[1]!.replace(/\\(.)/g, '$1'), str.lastIndex];
    };
    if (/^\d+$/.test(rest)) out[key] = Number(rest);
    else if (rest.startsWith('"')) {
      const [v, end] = unquote(rest, 0);
      if (end !== rest.length) throw new Error(`line ${i + 1}: trailing text after a string`);
      out[key] = v;
    } else if (rest.startsWith('[')) {
      const list: string[] = [];
      let at = 1;
      const skip = () => {
        while (rest[at] === ' ') at++;
      };
      skip();
      while (rest[at] !== ']') {
        const [v, end] = unquote(rest, at);
        list.push(v);
        at = end;
        skip();
        if (rest[at] === ',') at++;
        else if (rest[at] !== ']') throw new Error(`line ${i + 1}: expected , or ] at ${at}`);
        skip();
      }
      if (at !== rest.length - 1) throw new Error(`line ${i + 1}: trailing text after a list`);
      out[key] = list;
    } else throw new Error(`line ${i + 1}: unknown value ${rest}`);
  }
  return out;
}
