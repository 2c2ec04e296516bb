import { describe, expect, it } from 'vitest';
import { type Entry, type EntryStream, eachEntry } from '../entry.js';
import { classify, selectEntries } from './select.js';

const manifest = {
  templates: ['/etc/hostname', '/var/log/keep.conf'],
  persistent: ['/var/log', '/home'],
  volatile: ['/var/log/(?!apt).+', '/tmp/.+', '/etc/mtab$', '/cache$'],
};

function entry(path: string, extra: Partial<Entry> = {}): Entry {
  return {
    path: Buffer.from(path),
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeNs: 0n,
    size: 0,
    xattrs: new Map(),
    ...extra,
  };
}

async function collect(it: EntryStream): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of eachEntry(it)) out.push(e);
  return out;
}

async function* from(entries: Entry[]): AsyncIterable<Entry> {
  yield* entries;
}

describe('classify', () => {
  const kind = classify(manifest);
  it.each([
    ['/etc/hostname', 'templates'],
    ['/var/log/keep.conf', 'templates'],
    ['/var/log', 'persistent'],
    ['/var/log/apt', 'persistent'],
    ['/var/log/syslog', 'volatile'],
    ['/tmp', 'other'],
    ['/tmp/x', 'volatile'],
    ['/etc/mtab', 'volatile'],
    ['/cache', 'volatile'],
    ['/cache/below/it', 'volatile'],
    ['/home/u/.bashrc', 'persistent'],
    ['/homeless', 'other'],
    ['/', 'other'],
  ])('%s is %s', (path, expected) => {
    expect(kind(Buffer.from(path))).toBe(expected);
  });

  it('classifies a 4096-byte path quickly and refuses a longer one', () => {
    const k = classify({
      templates: [],
      persistent: [],
      volatile: ['/var/log/(?!apt).+', '/x/[^/]*\\.tmp$'],
    });
    const long = Buffer.from(`/x/${'a/'.repeat(2045)}`.slice(0, 4096));
    const t0 = performance.now();
    expect(k(long)).toBe('other');
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(() => k(Buffer.alloc(4097, 0x61))).toThrow(/longer than 4096/);
  });
});

describe('selectEntries', () => {
  it('drops volatile entries by default and keeps their directories', async () => {
    const out = await collect(
      selectEntries(
        from([
          entry('/', { type: 'dir' }),
          entry('/tmp', { type: 'dir' }),
          entry('/tmp/x'),
          entry('/etc/hostname'),
        ]),
        {
          classify: classify(manifest),
        },
      ),
    );
    expect(out.map((e) => e.path.toString())).toEqual(['/', '/tmp', '/etc/hostname']);
  });

  it('selects only the kinds asked for', async () => {
    const out = await collect(
      selectEntries(from([entry('/tmp', { type: 'dir' }), entry('/tmp/x'), entry('/etc/hostname')]), {
        classify: classify(manifest),
        kinds: ['volatile'],
      }),
    );
    expect(out.map((e) => e.path.toString())).toEqual(['/tmp/x']);
  });

  it('turns the first kept link of a dropped file into a file, later links point at it', async () => {
    const content = () =>
      (async function* () {
        yield Buffer.from('data');
      })();
    const out = await collect(
      selectEntries(
        from([
          entry('/a', { size: 4 }),
          entry('/tmp/b', { type: 'hardlink', linkTarget: Buffer.from('/a'), targetSize: 4, content }),
          entry('/tmp/c', { type: 'hardlink', linkTarget: Buffer.from('/a'), targetSize: 4, content }),
          entry('/z', { type: 'hardlink', linkTarget: Buffer.from('/a'), targetSize: 4, content }),
        ]),
        { classify: classify({ templates: [], persistent: [], volatile: ['/a$'] }) },
      ),
    );
    expect(out.map((e) => [e.path.toString(), e.type, e.size, e.linkTarget?.toString()])).toEqual([
      ['/tmp/b', 'file', 4, undefined],
      ['/tmp/c', 'hardlink', 0, '/tmp/b'],
      ['/z', 'hardlink', 0, '/tmp/b'],
    ]);
  });

  it('warns about and drops a hardlink whose content is gone (an archive source)', async () => {
    const warnings: string[] = [];
    const out = await collect(
      selectEntries(
        from([entry('/a', { size: 4 }), entry('/b', { type: 'hardlink', linkTarget: Buffer.from('/a') })]),
        {
          classify: classify({ templates: [], persistent: [], volatile: ['/a$'] }),
          onWarning: (m) => warnings.push(m),
        },
      ),
    );
    expect(out).toEqual([]);
    expect(warnings[0]).toMatch(/\/b: left out/);
  });
});
