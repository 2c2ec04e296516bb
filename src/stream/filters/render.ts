import { CloudletsError } from '../../errors.js';
import { asBatch, type Entry, type EntryStream } from '../entry.js';

/**
 * Swaps the content of template entries for their rendered text. Rendering happens before the stream
 * starts (templates are few and small, and a sink needs an entry's size before its content), so this
 * filter only substitutes bytes and checks that each template really was a regular file.
 */
export async function* renderEntries(
  entries: EntryStream,
  renderedTexts: ReadonlyMap<string, Buffer> | Promise<ReadonlyMap<string, Buffer>>,
): AsyncIterable<readonly Entry[]> {
  // Rendering (a child process) and the source's first steps (a walk) overlap: the first batch is
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
  const pending = new Set(rendered.keys());
  let finished = false;
  try {
    for (let step = await first; !step.done; step = await iterator.next()) {
      const batch = asBatch(step.value);
      // Every template found: the rest goes through with no lookup per entry.
      yield pending.size === 0 ? batch : substitute(batch, rendered, pending);
    }
    finished = true;
  } finally {
    // The consumer stopped early or a template was refused: the source stops too.
    if (!finished) await iterator.return?.();
  }
  // Every template was read before rendering, so one missing here was left out by a filter: nothing to do.
}

/** The batch with each template's content swapped for its rendered text (found ones leave `pending`). */
function substitute(
  batch: readonly Entry[],
  rendered: ReadonlyMap<string, Buffer>,
  pending: Set<string>,
): readonly Entry[] {
  return batch.map((entry) => {
    if (pending.size === 0) return entry;
    const key = entry.path.toString('utf8');
    const text = pending.has(key) ? rendered.get(key) : undefined;
    if (text === undefined) return entry;
    pending.delete(key);
    if (entry.type !== 'file') {
      throw new CloudletsError('ETEMPLATE', `is a ${entry.type}, but a template must be a regular file`, {
        where: key,
        hint: 'name the regular file itself in the manifest\'s "templates"',
      });
    }
    return {
      ...entry,
      size: text.length,
      content: async function* () {
        yield text;
      },
      openContentSync: undefined,
    };
  });
}
