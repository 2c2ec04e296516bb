import { CloudletsError } from '../errors.js';
import { comparePaths, type Entry } from '../stream/entry.js';

/**
 * Merges `extra` (sorted, paths absent from the stream) into a sorted entry stream at their byte-order
 * places, and stops with EINTERRUPTED between entries once `signal` fires.
 */
export async function* injectEntries(
  entries: AsyncIterable<Entry>,
  extra: Entry[],
  signal?: AbortSignal,
): AsyncIterable<Entry> {
  let i = 0;
  for await (const e of entries) {
    if (signal?.aborted) throw new CloudletsError('EINTERRUPTED', 'interrupted');
    while (i < extra.length && comparePaths(extra[i]!.path, e.path) < 0) yield extra[i++]!;
    yield e;
  }
  while (i < extra.length) yield extra[i++]!;
}
