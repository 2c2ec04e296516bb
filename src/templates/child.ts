/**
 * The renderer child process. It is started by ./renderer.ts as `node -e <program>` under the
 * permission model, so this function is sent as source text (Function.prototype.toString): it must
 * stay self-contained, everything it needs arrives as parameters.
 *
 * Per render it makes a fresh vm context holding nothing but the ejs browser bundle and the
 * sandbox bootstrap (./sandbox.ts), evaluated there so every function the template can reach is of
 * the sandbox realm. Only strings go in and come out. Every evaluation carries a time limit.
 */
import type * as VM from 'node:vm';
import type { createFrameReader as CreateFrameReader, encodeFrame as EncodeFrame } from './frame.js';

/** Messages the parent sends. */
export type ChildRequest =
  | { type: 'prepare'; ejs: string }
  | { type: 'init'; ejs: string; data: string }
  | { type: 'render'; request: string; timeoutMs: number };

/** Messages the child answers with; `output` carries the rendered bytes in the frame body. */
export type ChildReply =
  | { type: 'ready' }
  | { type: 'output' }
  | { type: 'need'; paths: unknown }
  | { type: 'error'; error: unknown }
  | { type: 'timeout' }
  | { type: 'fatal'; message: string };

/**
 * A fresh context with nothing in it. `import()` rejects with an error made in the context itself:
 * an error of the host realm would hand the template the host's Function constructor through
 * `err.constructor.constructor` (plain vm does exactly that). The import hook needs
 * `--experimental-vm-modules`. Microtasks run inside each evaluation, under its time limit.
 * Self-contained: sent to the child as source like childMain.
 */
export function createTemplateContext(vm: typeof VM): {
  context: VM.Context;
  options: { timeout: number; displayErrors: false; importModuleDynamically: never };
} {
  let denial: unknown;
  const deny = (): never => {
    throw denial;
  };
  const context = vm.createContext(Object.create(null), {
    name: 'template',
    codeGeneration: { strings: true, wasm: false },
    microtaskMode: 'afterEvaluate',
    importModuleDynamically: deny as never,
  });
  const options = { timeout: 1000, displayErrors: false as const, importModuleDynamically: deny as never };
  // Removed before any template runs: FinalizationRegistry callbacks would run later, outside any
  // evaluation and its time limit; binary buffers (ArrayBuffer, the typed arrays, WebAssembly.Memory)
  // live outside the V8 heap, so --max-old-space-size would not bound them. Templates make text.
  denial = vm.runInContext(
    `for (const name of Object.getOwnPropertyNames(globalThis)) {
       if (name === 'FinalizationRegistry' || name === 'WebAssembly' || name === 'Atomics' ||
           name === 'DataView' || (/(Array|Buffer)$/.test(name) && name !== 'Array')) delete globalThis[name];
     }
     new Error("import() is not available in templates")`,
    context,
    options,
  );
  return { context, options };
}

type ContextFactory = typeof createTemplateContext;

export function childMain(
  vm: typeof VM,
  proc: NodeJS.Process,
  encodeFrame: typeof EncodeFrame,
  createFrameReader: typeof CreateFrameReader,
  createTemplateContext: ContextFactory,
  sandboxSource: string,
): void {
  const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
  let ejsScript: VM.Script | undefined;
  let ejsSource: string | undefined;
  /** A fresh context with ejs already evaluated, made while the parent was still getting ready. */
  let prepared: ReturnType<ContextFactory> | undefined;
  let data = '{}';
  const compileEjs = (source: string): void => {
    if (source === ejsSource) return;
    ejsScript = new vm.Script(source, { filename: 'ejs.js' });
    ejsSource = source;
    prepared = undefined;
  };
  const read = createFrameReader({ maxHeader: 256 * 1024 * 1024, maxBody: 0 });

  const send = (header: ChildReply, body?: Buffer): void => {
    proc.stdout.write(encodeFrame(header, body));
  };

  // Maps a line of ejs's generated function body back to the template line: the generated code
  // sets `__line = N` before the code of template line N.
  const locateSyntaxError = (source: string): number | undefined => {
    try {
      new vm.Script(`(function (locals, escapeFn, include, rethrow) {\n${source}\n})`, {
        filename: 'template',
      });
      return undefined;
    } catch (err) {
      const m = /^template:(\d+)/.exec(String((err as Error).stack));
      if (!m) return undefined;
      const lines = source.split('\n');
      for (let i = Math.min(Number(m[1]) - 2, lines.length - 1); i >= 0; i--) {
        const marks = (lines[i] as string).match(/__line = (\d+)/g);
        if (marks) return Number((marks[marks.length - 1] as string).slice('__line = '.length));
      }
      return 1;
    }
  };

  const render = (request: string, timeoutMs: number): void => {
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(1, deadline - Date.now());
    const ready = prepared;
    prepared = undefined;
    const { context, options } = ready ?? createTemplateContext(vm);
    let result: unknown;
    try {
      if (!ready) (ejsScript as VM.Script).runInContext(context, { timeout: left(), displayErrors: false });
      options.timeout = left();
      result = vm.runInContext(
        `"use strict";(${sandboxSource})(${JSON.stringify(request)}, ${JSON.stringify(data)})`,
        context,
        options,
      );
    } catch {
      // Never look into what was thrown: it may be an object of the template's making. The only
      // thing that can escape the bootstrap's catch-all is the host's time limit.
      if (Date.now() >= deadline - 5) send({ type: 'timeout' });
      else send({ type: 'fatal', message: 'the template broke out of the renderer bootstrap' });
      return;
    }
    if (typeof result !== 'string' || result.length === 0) {
      send({ type: 'fatal', message: 'the template tampered with the renderer' });
      return;
    }
    const kind = result[0];
    const rest = result.slice(1);
    if (kind === 'O') {
      if (Buffer.byteLength(rest, 'utf8') > MAX_OUTPUT_BYTES) {
        send({
          type: 'error',
          error: { name: 'Error', message: 'the output is larger than 16 MiB', chain: [] },
        });
        return;
      }
      send({ type: 'output' }, Buffer.from(rest, 'utf8'));
    } else if (kind === 'N') {
      send({ type: 'need', paths: JSON.parse(rest) });
    } else if (kind === 'E') {
      const error = JSON.parse(rest);
      if (error && typeof error === 'object' && error.syntax && typeof error.syntax.source === 'string') {
        const line = locateSyntaxError(error.syntax.source);
        if (line !== undefined) error.chain.push({ path: error.syntax.path, line });
        error.syntax = undefined;
      }
      send({ type: 'error', error });
    } else {
      send({ type: 'fatal', message: 'the template tampered with the renderer' });
    }
  };

  const handle = (message: ChildRequest): void => {
    if (message.type === 'prepare') {
      // No answer: the first render's context is made now, fresh as any (nothing of a template or its
      // data has been in it), so that the render itself only runs the template.
      try {
        compileEjs(message.ejs);
        const next = createTemplateContext(vm);
        (ejsScript as VM.Script).runInContext(next.context, { timeout: 5_000, displayErrors: false });
        prepared = next;
      } catch {
        prepared = undefined; // the render makes its own, and reports what fails then
      }
    } else if (message.type === 'init') {
      compileEjs(message.ejs);
      data = message.data;
      send({ type: 'ready' });
    } else if (message.type === 'render' && ejsScript) {
      render(message.request, message.timeoutMs);
    } else {
      send({ type: 'fatal', message: 'unexpected message' });
    }
  };

  proc.stdin.on('data', (chunk: Buffer) => {
    for (const frame of read(chunk)) {
      try {
        handle(frame.header as ChildRequest);
      } catch (err) {
        send({ type: 'fatal', message: `renderer: ${String((err as Error).message)}` });
      }
    }
  });
}
