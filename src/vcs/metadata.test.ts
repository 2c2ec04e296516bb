import { describe, expect, it } from 'vitest';
import {
  diffMetadata,
  diffMetadataText,
  escapeBytes,
  formatMetadata,
  formatMetadataLines,
  type MetaRecord,
  mergeMetadata,
  parseMetadata,
  unescapeBytes,
} from './metadata.js';
import { fromRepoPath, toRepoPath } from './repo-path.js';

const rec = (path: string | Buffer, extra: Partial<MetaRecord> = {}): MetaRecord => ({
  path: typeof path === 'string' ? Buffer.from(path) : path,
  type: 'file',
  uid: 0,
  gid: 0,
  mode: 0o644,
  xattrs: new Map(),
  ...extra,
});

describe('path escaping', () => {
  it('keeps readable names readable and escapes the rest as \\xHH', () => {
    expect(escapeBytes(Buffer.from('/usr/share/ünïcode'))).toBe('/usr/share/ünïcode');
    expect(escapeBytes(Buffer.from('/a b\nc\\d\x7f'))).toBe('/a\\x20b\\x0ac\\x5cd\\x7f');
    expect(escapeBytes(Buffer.from([0x2f, 0x78, 0xff, 0xc3]))).toBe('/x\\xff\\xc3');
  });

  it('round-trips any bytes', () => {
    for (let n = 0; n < 200; n++) {
      const bytes = Buffer.from(Array.from({ length: 1 + (n % 17) }, (_, i) => (n * 31 + i * 97) % 256));
      const esc = escapeBytes(bytes);
      expect(esc).not.toMatch(/[\s]/);
      expect(unescapeBytes(esc).equals(bytes)).toBe(true);
    }
  });

  it('maps nested .git/.hg to escaped names one-to-one', () => {
    const cases = ['/etc/.git/HEAD', '/a/.GIT', '/a/.git.cloudlets-escaped/x', '/a/.gitignore', '/.github/x'];
    for (const c of cases) {
      const repo = toRepoPath(Buffer.from(c), '.git');
      expect(fromRepoPath(repo, '.git').toString()).toBe(c);
      expect(repo.toString().split('/')).not.toContain('.git');
    }
    expect(toRepoPath(Buffer.from('/etc/.git/HEAD'), '.git').toString()).toBe(
      'etc/.git.cloudlets-escaped/HEAD',
    );
    expect(toRepoPath(Buffer.from('/a/.gitignore'), '.git').toString()).toBe('a/.gitignore');
    expect(toRepoPath(Buffer.from('/srv/.hg/store'), '.hg').toString()).toBe(
      'srv/.hg.cloudlets-escaped/store',
    );
  });
});

describe('metadata file', () => {
  const records: MetaRecord[] = [
    rec('/usr/bin/ping', {
      mode: 0o4755,
      xattrs: new Map([['security.capability', Buffer.from([1, 0, 0, 2])]]),
    }),
    rec('/', { type: 'dir', mode: 0o755 }),
    rec('/dev/null', { type: 'char', mode: 0o666, devMajor: 1, devMinor: 3 }),
    rec('/usr/bin/ping6', { type: 'hardlink', mode: 0o4755, link: Buffer.from('/usr/bin/ping') }),
    rec(Buffer.from([0x2f, 0x6f, 0x0a, 0xff]), { uid: 1000, gid: 1000, mtimeNs: 1700000000123456789n }),
    rec('/x', { xattrs: new Map([['user.a=b', Buffer.from('v=1')]]) }),
  ];

  it('is sorted by path bytes, one line per path, and parses back to the same records', () => {
    const text = formatMetadata(records);
    expect(text).toBe(
      [
        '# cloudlets metadata 1',
        '/ dir 0:0 0755',
        '/dev/null char 0:0 0666 dev=1,3',
        '/o\\x0a\\xff file 1000:1000 0644 mtime=1700000000.123456789',
        '/usr/bin/ping file 0:0 4755 xattr.security.capability=AQAAAg==',
        '/usr/bin/ping6 hardlink 0:0 4755 link=/usr/bin/ping',
        '/x file 0:0 0644 xattr.user.a\\x3db=dj0x',
        '',
      ].join('\n'),
    );
    expect(formatMetadata(parseMetadata(text))).toBe(text);
  });

  it.each([
    ['<<<<<<< HEAD', /merge conflict markers/],
    ['/a file 0:0 0644 exec=rm', /unknown field "exec"/],
    ['/a file 0:0 99999', /bad mode/],
    ['/a thing 0:0 0644', /unknown type/],
    ['/a char 0:0 0644', /device without dev=/],
    ['/a file 0:0 0644\n/a file 0:0 0644', /the same path appears twice/],
    ['/a\\zz file 0:0 0644', /bad escape/],
  ])('refuses %j', (line, message) => {
    expect(() => parseMetadata(`# cloudlets metadata 1\n${line}\n`)).toThrow(message);
  });

  it('describes changes as readable lines', () => {
    const before = [
      rec('/usr/bin/ping', { mode: 0o755 }),
      rec('/home/app', { type: 'dir', mode: 0o755 }),
      rec('/gone', { type: 'fifo' }),
    ];
    const after = [
      rec('/usr/bin/ping', { mode: 0o4755, xattrs: new Map([['security.capability', Buffer.from('x')]]) }),
      rec('/home/app', { type: 'dir', mode: 0o755, uid: 1000, gid: 1000 }),
      rec('/new', { type: 'dir', mode: 0o700 }),
    ];
    expect(diffMetadata(before, after).map((c) => c.text)).toEqual([
      'removed fifo 0644 0:0 /gone',
      'owner 0:0 -> 1000:1000 /home/app',
      'added dir 0700 0:0 /new',
      'mode 0755 -> 4755 /usr/bin/ping',
      'xattr security.capability added /usr/bin/ping',
    ]);
  });

  it('merges path by path: neighbouring changes are no conflict', () => {
    const base = [rec('/a'), rec('/b'), rec('/c')];
    const ours = [rec('/a', { mode: 0o600 }), rec('/b'), rec('/c'), rec('/d')];
    const theirs = [rec('/a'), rec('/b', { uid: 5 }), rec('/e')];
    const m = mergeMetadata(base, ours, theirs);
    expect(m.conflicts).toEqual([]);
    expect(formatMetadata(m.records)).toBe(
      '# cloudlets metadata 1\n/a file 0:0 0600\n/b file 5:0 0644\n/d file 0:0 0644\n/e file 0:0 0644\n',
    );
    const clash = mergeMetadata(base, [rec('/a', { mode: 0o600 })], [rec('/a', { mode: 0o700 })]);
    expect(clash.conflicts.map(String)).toEqual(['/a']);
  });
});

describe('comparing without parsing what is unchanged', () => {
  const before = [
    rec('/', { type: 'dir', mode: 0o755 }),
    rec('/a', { mode: 0o600 }),
    rec('/b', { xattrs: new Map([['user.x', Buffer.from('1')]]) }),
    rec('/gone', { type: 'fifo' }),
    rec('/same'),
  ];
  const after = [
    rec('/', { type: 'dir', mode: 0o755 }),
    rec('/a', { mode: 0o644, uid: 5 }),
    rec('/b'),
    rec('/new', { type: 'dir' }),
    rec('/same'),
  ];

  it('says what diffMetadata says', () => {
    const text = formatMetadata(before);
    const lines = formatMetadataLines(after);
    expect(lines.text).toBe(formatMetadata(after));
    expect(diffMetadataText(text, 'm', lines.sorted, lines.lines)).toEqual(diffMetadata(before, after));
    // A hand-written line (not in canonical form) is parsed and compared like any other.
    const hand = text.replace('/same file 0:0 0644', '/s\\x61me file 0:0 644');
    expect(diffMetadataText(hand, 'm', lines.sorted, lines.lines)).toEqual(diffMetadata(before, after));
  });

  it('still refuses a bad file: conflict markers, duplicates (with their line numbers)', () => {
    const lines = formatMetadataLines(after);
    const text = formatMetadata(before);
    expect(() => diffMetadataText(`${text}<<<<<<< ours\n`, 'm', lines.sorted, lines.lines)).toThrow(
      /conflict markers/,
    );
    const dup = `${text}/s\\x61me file 0:0 0644\n`;
    expect(() => diffMetadataText(dup, 'm', lines.sorted, lines.lines)).toThrow(
      expect.objectContaining({ where: 'm:7' }),
    );
    expect(() => parseMetadata(dup, 'm')).toThrow(expect.objectContaining({ where: 'm:7' }));
  });

  it('reuses the records of identical lines and still checks duplicates', () => {
    const byLine = new Map<string, MetaRecord>();
    const old = parseMetadata(formatMetadata(before), 'm', { byLine });
    const reused = new Set<MetaRecord>();
    const now = parseMetadata(formatMetadata(after), 'm', { reuse: byLine, reused });
    expect(now).toEqual(parseMetadata(formatMetadata(after), 'm'));
    expect([...reused].map((r) => r.path.toString()).sort()).toEqual(['/', '/same']);
    expect(now.find((r) => r.path.toString() === '/same')).toBe(
      old.find((r) => r.path.toString() === '/same'),
    );
    expect(() =>
      parseMetadata(`${formatMetadata(after)}/same file 0:0 0644\n`, 'm', { reuse: byLine }),
    ).toThrow(/twice/);
  });
});
