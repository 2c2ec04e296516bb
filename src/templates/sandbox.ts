/**
 * The code that runs INSIDE a template's vm context, next to the ejs browser bundle.
 *
 * It is sent as source text (Function.prototype.toString) and evaluated in the context, in strict
 * mode, so it is a function of the sandbox realm; it must stay self-contained: no imports, no
 * references outside its body. It takes only strings and returns only a string, so no object ever
 * crosses between realms:
 *
 *   'O' + output                      rendered
 *   'N' + JSON [image paths]          includes that are not loaded yet: load them and render again
 *   'E' + JSON SandboxError           the template failed
 *   'X'                               the template broke the renderer's own state
 *
 * The template can tamper with everything in its realm (prototypes, JSON, ...). That only spoils its
 * own result, which the host validates. The host calls into the realm only under a vm time limit;
 * what that limit cannot stop (an accessor run by Node while it reports the timeout) the parent's
 * watchdog kills with the whole process.
 */

/** What the sandbox reports about a failure; `chain` lists the template/include lines, outermost first. */
export interface SandboxError {
  name: string;
  message: string;
  chain: { path: string; line: number }[];
  /** For a SyntaxError at compile time: the generated function body and the file it came from. */
  syntax?: { path: string; source: string };
}

/** Request fields; the host builds this JSON. `files` maps image path → text, or null when absent. */
export interface SandboxRequest {
  path: string;
  text: string;
  files: Record<string, string | null>;
}

// biome-ignore lint/suspicious/noExplicitAny: this runs in a realm TypeScript knows nothing about
type Any = any;

export function sandboxBoot(requestJson: string, dataJson: string): string {
  try {
    const MAX_INCLUDE_DEPTH = 32;
    const MAX_OUTPUT_CHARS = 16 * 1024 * 1024;
    const IDENTIFIER = /^[A-Za-z_$][0-9A-Za-z_$]*$/;
    // Names the template sees under fixed meanings, names ejs's generated code uses inside its
    // `with` block, and globals a configuration key must not hide.
    const RESERVED = [
      'args',
      'config',
      'manifest',
      'include',
      'locals',
      'escapeFn',
      'rethrow',
      'undefined',
      'NaN',
      'Infinity',
      'eval',
      'arguments',
      'constructor',
      'prototype',
    ];
    const g: Any = globalThis;
    const ejs: Any = g.ejs;
    delete g.ejs;
    const stringify = JSON.stringify;
    const hasOwn = (o: Any, k: string): boolean => Object.hasOwn(o, k);
    const keys = Object.keys;

    const request: SandboxRequest = JSON.parse(requestJson);
    const data: Any = JSON.parse(dataJson);
    const files: Any = request.files;
    const configuration: Any =
      data.configuration !== null && typeof data.configuration === 'object' ? data.configuration : {};
    const args: Any =
      configuration.args !== null && typeof configuration.args === 'object' ? configuration.args : {};

    const exposable = (k: string): boolean =>
      IDENTIFIER.test(k) && k.slice(0, 2) !== '__' && RESERVED.indexOf(k) < 0;

    // Templates of the earlier tool used the configuration's keys directly (`dns.nameservers`) and the
    // user arguments too (`hostname`); the fixed names come last so nothing can shadow them.
    const base: Any = Object.create(null);
    for (const k of keys(configuration)) if (k !== 'args' && exposable(k)) base[k] = configuration[k];
    if (!Array.isArray(args)) for (const k of keys(args)) if (exposable(k)) base[k] = args[k];
    base.args = args;
    base.config = configuration;
    base.manifest = data.manifest;

    // ejs labels errors with the HTML-escaped file name; map it back to find the include chain.
    const known: Any = Object.create(null);
    known[ejs.escapeXML(request.path)] = request.path;
    for (const p of keys(files)) known[ejs.escapeXML(p)] = p;

    const missing: string[] = [];
    const MISSING = new Error('include not loaded yet');
    const compiled: Any = Object.create(null);

    // A fixed options literal: nothing from the configuration or the template reaches ejs options.
    const compile = (text: string, filename: string): Any => {
      if (hasOwn(compiled, filename)) return compiled[filename];
      const template = new ejs.Template(text, {
        filename,
        strict: false,
        _with: true,
        localsName: 'locals',
        compileDebug: true,
        // Templates write configuration files, not HTML: `<%=` inserts the value as is, like `<%-`.
        escape: (value: unknown) => (value === undefined || value === null ? '' : String(value)),
        client: false,
        async: false,
        cache: false,
        debug: false,
        rmWhitespace: false,
        delimiter: '%',
        openDelimiter: '<',
        closeDelimiter: '>',
      });
      try {
        compiled[filename] = template.compile();
      } catch (err) {
        if (err instanceof SyntaxError) {
          (err as Any).cloudletsSyntax = { path: filename, source: String(template.source) };
        }
        throw err;
      }
      return compiled[filename];
    };

    const resolvePath = (from: string, target: unknown): string => {
      if (typeof target !== 'string' || target === '' || target.indexOf('\0') >= 0) {
        throw new Error('include() needs an image path');
      }
      const parts = target[0] === '/' ? [] : from.split('/').slice(1, -1);
      for (const seg of target.split('/')) {
        if (seg === '' || seg === '.') continue;
        if (seg === '..') {
          if (parts.length === 0) throw new Error(`include ${target}: the path leaves the image`);
          parts.pop();
        } else {
          parts.push(seg);
        }
      }
      return `/${parts.join('/')}`;
    };

    const localsFor = (path: string, depth: number, extra: unknown): Any => {
      const locals: Any = Object.create(null);
      for (const k of keys(base)) locals[k] = base[k];
      if (extra !== null && typeof extra === 'object') {
        for (const k of keys(extra)) if (k !== '__proto__') locals[k] = (extra as Any)[k];
      }
      locals.include = makeInclude(path, depth);
      return locals;
    };

    const makeInclude = (from: string, depth: number) =>
      function include(target: unknown, extra?: unknown): string {
        if (depth >= MAX_INCLUDE_DEPTH) {
          throw new Error(`includes nested deeper than ${MAX_INCLUDE_DEPTH} levels (a cycle?)`);
        }
        const path = resolvePath(from, target);
        if (!hasOwn(files, path)) {
          if (missing.indexOf(path) < 0) missing.push(path);
          throw MISSING;
        }
        const text = files[path];
        if (typeof text !== 'string') throw new Error(`include ${path}: no such file in the image`);
        return compile(text, path)(localsFor(path, depth + 1, extra));
      };

    const describe = (err: unknown): SandboxError => {
      let name = 'Error';
      let message = '';
      let syntax: Any;
      try {
        if (err !== null && (typeof err === 'object' || typeof err === 'function')) {
          name = String((err as Any).name);
          message = String((err as Any).message);
          syntax = (err as Any).cloudletsSyntax;
        } else {
          name = 'thrown value';
          message = String(err);
        }
      } catch {
        message = 'the template threw a value that cannot be printed';
      }
      // ejs's rethrow prefixes "file:line\n<context lines>\n\n" once per template on the way out.
      const chain: { path: string; line: number }[] = [];
      for (;;) {
        const m = /^([^\n]*):(\d+)\n/.exec(message);
        if (!m || !hasOwn(known, m[1] as string)) break;
        const end = message.indexOf('\n\n', m[0].length - 1);
        if (end < 0) break;
        chain.push({ path: known[m[1] as string], line: Number(m[2]) });
        message = message.slice(end + 2);
      }
      const result: SandboxError = { name, message, chain };
      if (syntax && typeof syntax.path === 'string' && typeof syntax.source === 'string') {
        // ejs appends " in FILE while compiling ejs" and advice about EJS-Lint: keep the first line.
        result.message = message.split('\n')[0]?.replace(` in ${syntax.path} while compiling ejs`, '') ?? '';
        result.syntax = { path: syntax.path, source: syntax.source };
      }
      return result;
    };

    let output: unknown;
    try {
      output = compile(request.text, request.path)(localsFor(request.path, 0, undefined));
    } catch (err) {
      if (missing.length > 0) return `N${stringify(missing)}`;
      return `E${stringify(describe(err))}`;
    }
    // A template may catch the marker and carry on; its output is still incomplete.
    if (missing.length > 0) return `N${stringify(missing)}`;
    if (typeof output !== 'string') return 'X';
    if (output.length > MAX_OUTPUT_CHARS) {
      return `E${stringify({ name: 'Error', message: 'the output is larger than 16 MiB', chain: [] })}`;
    }
    return `O${output}`;
  } catch {
    return 'X';
  }
}
