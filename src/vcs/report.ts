// Turns what a restore skipped into a few readable warning lines (grouped: a tree may skip thousands).
import type { Skipped } from './restore.js';

const SHOWN = 5;

export function describeSkipped(skipped: readonly Skipped[]): string[] {
  const groups = new Map<string, Skipped[]>();
  for (const s of skipped) {
    const key = s.path ? `${s.what}: ${s.why}` : `${s.what}: ${s.why}`;
    const list = groups.get(key) ?? [];
    list.push(s);
    groups.set(key, list);
  }
  const lines: string[] = [];
  for (const [key, list] of groups) {
    const paths = list.map((s) => s.path).filter(Boolean);
    const more = paths.length > SHOWN ? ` and ${paths.length - SHOWN} more` : '';
    lines.push(
      paths.length ? `skipped ${key} (${paths.slice(0, SHOWN).join(', ')}${more})` : `skipped ${key}`,
    );
  }
  return lines;
}
