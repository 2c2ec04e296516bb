import { CloudletsError } from '../../errors.js';
import type { Entry } from '../entry.js';

/**
 * Swaps the content of template entries for their rendered text. Rendering happens before the stream
 * starts (templates are few and small, and a sink needs an entry's size before its content), so this
 * filter only substitutes bytes and checks that each template really was a regular file.
 */
export async function* renderEntries(
  entries: AsyncIterable<Entry>,
  rendered: ReadonlyMap<string, Buffer>,
): AsyncIterable<Entry> {
  if (rendered.size === 0) {
    yield* entries;
    return;
  }
  const pending = new Set(rendered.keys());
  for await (const entry of entries) {
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
