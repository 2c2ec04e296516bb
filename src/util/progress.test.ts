import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress, formatBytes, formatProgress } from './progress.js';

function sink() {
  let text = '';
  const stream = new Writable({
    write(c, _e, cb) {
      text += c;
      cb();
    },
  });
  return { stream, text: () => text };
}

describe('progress', () => {
  it('formats bytes, rate and elapsed time', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(3 * 1024 * 1024)).toBe('3.0 MiB');
    expect(formatProgress('out.tar', 50 << 20, 2000, 100 << 20)).toBe(
      'out.tar [############............] 50.0 MiB / 100.0 MiB 50%  25.0 MiB/s  00:02',
    );
    expect(formatProgress('disk.img', 3 << 20, 1000)).toBe('disk.img 3.0 MiB  3.0 MiB/s  00:01');
    // An estimated total that turns out short never shows more than a full bar.
    expect(formatProgress('disk.img', 150 << 20, 1000, 100 << 20)).toContain(
      `[${'#'.repeat(24)}] 150.0 MiB / 100.0 MiB 100%`,
    );
  });

  it('redraws at most ten times a second', () => {
    let now = 0;
    const s = sink();
    const p = createProgress({ stream: s.stream, enabled: true, label: 'x', now: () => now });
    for (let i = 0; i < 100; i++) {
      now += 10;
      p.update(i);
    }
    p.done();
    expect(s.text().split('\r').length - 1).toBeLessThanOrEqual(11);
    expect(s.text().endsWith('\n')).toBe(true);
  });

  it('prints nothing when not interactive', () => {
    const s = sink();
    const p = createProgress({ stream: s.stream, enabled: false, label: 'x' });
    p.update(100);
    p.done();
    expect(s.text()).toBe('');
  });
});
