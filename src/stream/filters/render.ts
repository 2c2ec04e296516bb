import { CloudletsError } from '../../errors.js';
import type { Entry } from '../entry.js';

/**
 * Swaps the content of template entries for their rendered text. Rendering happens before the stream
 * starts (templates are few and small, and a sink needs an entry's size before its content), so this
 * filter only substitutes bytes and checks that each template really was a regular file.
 */
export async function* renderEntries(
  entries: AsyncIterable<Entry>,
  renderedTexts: ReadonlyMap<string, Buffer> | Promise<ReadonlyMap<string, Buffer>>,
): AsyncIterable<Entry> {
  // Rendering (a child process) and the source's first steps (a walk) overlap: the first entry is
  // asked for before the rendered texts are awaited, and neither is passed on before both are ready,
  // so a template error still stops the export before anything is written.
  const iterator = entries[Symbol.asyncIterator]();
  const first = iterator.next();
  first.catch(() => undefined); // marked handled: its error is thrown when it is consumed below
  let rendered: ReadonlyMap<string, Buffer>;
  try {
    rendered = await renderedTexts;
  } catch (err) {
    first.then(
      () => iterator.return?.(),
      () => undefined,
    );
    throw err;
  }
  const rest: AsyncIterable<Entry> = {
    [Symbol.asyncIterator]: () => ({
      next: (() => {
        let pendingFirst: Promise<IteratorResult<Entry>> | undefined = first;
        return () => {
          const step = pendingFirst ?? iterator.next();
          pendingFirst = undefined;
          return step;
        };
      })(),
      return: async () => (await iterator.return?.()) ?? { done: true, value: undefined },
    }),
  };
  if (rendered.size === 0) {
    yield* rest;
    return;
  }
  const pending = new Set(rendered.keys());
  for await (const entry of rest) {
    // Every template found: the rest goes through with no lookup per entry.
    if (pending.size === 0) {
      yield entry;
      continue;
    }
    const key = entry.path.toString('utf8');
    const text = pending.has(key) ? rendered.get(key) : undefined;
    if (text === undefined) {
      yield entry;
      continue;
    }
    pending.delete(key);
    if (entry.type !== 'file') {
      throw new CloudletsError('ETEMPLATE', `is a ${entry.type}, but a template must be a regular file`, {
        where: key,
        hint: 'name the regular file itself in the manifest\'s "templates"',
      });
    }
    yield {
      ...entry,
      size: text.length,
      content: async function* () {
        yield text;
      },
      openContentSync: undefined,
    };
  }
  // Every template was read before rendering, so one missing here was left out by a filter: nothing to do.
}
