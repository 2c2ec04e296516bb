import { describe, expect, it } from 'vitest';
import {
  backtrackingRisk,
  compileVolatilePatterns,
  isAtOrBelow,
  manifestPath,
  matchText,
} from './patterns.js';

const SAMPLE_VOLATILE = [
  '/etc/rc6.d/S00vzreboot$',
  '/var/log/(?!apt).+',
  '/var/log/apt/.+',
  '/var/run/.+',
  '/sys/.+',
  '/proc/.+',
  '/var/tmp/.+',
  '/tmp/.+',
  '/var/cache/apt/archives/lock$',
  '/etc/mtab$',
  '/etc/nologin$',
  '/dev/log$',
  '/var/lib/urandom/random-seed$',
  '/usr/lib/python2.6/.+\\.pyc',
  '/var/lib/apt/lists/(?!partial).+',
  '/var/lib/apt/lists/partial/.+',
  '/var/cache/apt/pkgcache.bin$',
  '/var/cache/apt/srcpkgcache.bin$',
  '/var/cache/apt/archives/.+\\.deb',
  '/var/cache/apt/archives/partial/.+',
  '/var/cache/debconf/.+',
];

const matcher = (patterns: string[]) => {
  const res = compileVolatilePatterns(patterns);
  return (p: string | Buffer) =>
    res.some((re) => re.test(matchText(Buffer.isBuffer(p) ? p : Buffer.from(p))));
};

describe('volatile patterns', () => {
  it('accepts every pattern of the earlier tool sample manifest', () => {
    expect(() => compileVolatilePatterns(SAMPLE_VOLATILE)).not.toThrow();
  });

  it('match from the start of the path and need not reach its end', () => {
    const m = matcher(SAMPLE_VOLATILE);
    expect(m('/tmp/x')).toBe(true);
    expect(m('/tmp/x/y')).toBe(true);
    expect(m('/tmp')).toBe(false);
    expect(m('/home/tmp/x')).toBe(false);
    expect(m('/var/log/syslog')).toBe(true);
    expect(m('/var/log/apt')).toBe(false);
    expect(m('/var/log/apt/term.log')).toBe(true);
    expect(m('/etc/mtab')).toBe(true);
    expect(m('/etc/mtab.d')).toBe(false);
    expect(m('/usr/lib/python2.6/os.pyc')).toBe(true);
    expect(m('/usr/lib/python2.6/os.py')).toBe(false);
    expect(m('/var/lib/apt/lists/partial')).toBe(false);
    expect(m('/var/lib/apt/lists/deb.debian.org_dists')).toBe(true);
  });

  it('match non-UTF-8 bytes and UTF-8 names byte for byte', () => {
    const m = matcher(['/data/caf\u00e9/.+', '/raw/\\xff$']);
    expect(m(Buffer.from('/data/caf\u00e9/x'))).toBe(true);
    expect(m(Buffer.concat([Buffer.from('/raw/'), Buffer.from([0xff])]))).toBe(true);
    expect(m(Buffer.concat([Buffer.from('/data/caf'), Buffer.from([0xe9]), Buffer.from('/x')]))).toBe(false);
  });

  it.each([
    ['(a+)+$', /nested repetition/],
    ['/x/(?:\\w*\\s?)*$', /nested repetition/],
    ['/x/(a?a?)*$', /nested repetition/],
    ['/x/(?:[^/]+/)*y', /nested repetition/],
    ['/x/(a|ab)*$', /alternation/],
    ['/x/(\\w|\\d)*$', /alternation/],
    ['/x/.*.*.*y', /backtracking/],
    ['/(.*)/(.*)/x$', /backtracking/],
    ['(a)\\1', /backreference/],
  ])('rejects %s', (pattern, reason) => {
    expect(backtrackingRisk(pattern)).toMatch(reason);
  });

  it.each(['/x/(?:ab{2})*$', '/x/(?:(?!apt|dpkg).)*$', '/x/[^/]*/y/.*\\.log$'])('accepts %s', (pattern) => {
    expect(backtrackingRisk(pattern)).toBeUndefined();
  });

  it('rejects with EPATTERN naming the manifest and the index, quickly', () => {
    const t0 = performance.now();
    let err: unknown;
    try {
      compileVolatilePatterns(['/tmp/.+', '/var/.+', '/x$', '(a+)+$'], 'img/.cloudlet/manifest');
    } catch (e) {
      err = e;
    }
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(err).toMatchObject({ code: 'EPATTERN', where: 'img/.cloudlet/manifest' });
    expect((err as Error).message).toMatch(/^\/volatile\/3: pattern may backtrack catastrophically: /);
  });

  it('rejects invalid and over-long patterns', () => {
    expect(() => compileVolatilePatterns(['/a/(b'])).toThrow(/\/volatile\/0: invalid regular expression/);
    expect(() => compileVolatilePatterns(['a'.repeat(2000)])).toThrow(/longer than/);
    // A pattern that closes the wrapping group must not change meaning.
    expect(() => compileVolatilePatterns(['/a)|(.*'])).toThrow(/invalid/);
  });

  it('keeps accepted patterns fast on a 4096-byte path', () => {
    const m = matcher(SAMPLE_VOLATILE.concat(['/home/[^/]+/\\.cache/.+', '/var/log/.*\\.log$']));
    const long = `/var/log/${'a'.repeat(4000)}!`;
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) m(long);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe('persistent and template paths', () => {
  it('a persistent path covers itself and what lies below, literally', () => {
    const p = manifestPath('/var/log/');
    expect(isAtOrBelow(Buffer.from('/var/log'), p)).toBe(true);
    expect(isAtOrBelow(Buffer.from('/var/log/x/y'), p)).toBe(true);
    expect(isAtOrBelow(Buffer.from('/var/logs'), p)).toBe(false);
    expect(isAtOrBelow(Buffer.from('/var'), p)).toBe(false);
    expect(isAtOrBelow(Buffer.from('/var/lo/x'), manifestPath('/var/l.'))).toBe(false);
    expect(isAtOrBelow(Buffer.from('/anything'), manifestPath('/'))).toBe(true);
  });
});
