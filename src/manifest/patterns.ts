/**
 * The manifest's path patterns: `volatile` regular expressions, `persistent` prefixes, `templates` paths.
 *
 * Volatile patterns keep the earlier tool's semantics (Python `re.match`): a pattern is matched from the
 * START of the image-rooted path and need not reach its end (`/tmp/.+` matches `/tmp/a/b`; add `$` to
 * match a whole path). They are JavaScript regular expressions, compiled without flags.
 *
 * Bytes: a path is matched as its bytes decoded as latin1 (one character per byte), and a pattern's
 * non-ASCII characters are turned into their UTF-8 bytes the same way. This is the byte-string semantics
 * of the Python 2 tool: any path, UTF-8 or not, is matched exactly and the same way every time, `é` in a
 * pattern matches the two bytes of `é` in a name, `.` matches a single byte (any but `\n` and `\r`),
 * and `\xff` matches the byte 0xff.
 *
 * Catastrophic backtracking (images come from strangers, and so do manifests). A volatile pattern is
 * REJECTED (CloudletsError EPATTERN) when:
 *  1. it nests a variable repetition inside a repetition, where either level is unbounded: a quantifier
 *     allowing more than one repetition (`*`, `+`, `{n,m}` with m > 1) applied to something holding a
 *     quantifier whose count varies (`*`, `+`, `?`, `{n,m}` with n < m): `(a+)+`, `(a?a?)*`,
 *     `(?:\w*\s?)*`, `(?:[^/]+/)*`, `(a+){2}`; fixed counts such as `(?:ab{2})*` and bounded levels such
 *     as `(\.\d{1,3}){3}` are fine;
 *  2. it repeats an alternation without bound: `*`, `+` or `{n,}` applied to a group holding `|` outside
 *     a lookaround (`(a|ab)*`; write a character class `[ab]*` instead; `(?:(?!apt|dpkg).)*` and
 *     `(a|b){3}` are fine);
 *  3. it uses a backreference (`\1`, `\k<name>`);
 *  4. the static analyser scslre (the one behind eslint-plugin-regexp's `no-super-linear-backtracking`)
 *     finds super-linear backtracking, exponential or polynomial, e.g. two adjacent quantifiers that
 *     can match the same character (`.*.*x`, `\d+\d+$`, `/(.*)/(.*)/x`; write `[^/]*` for a component);
 *     (It runs only on patterns with two or more repetitions; one repetition alone, like the `.+` of
 *     `/var/log/(?!apt).+`, cannot backtrack more than once over the path.)
 *  5. it is longer than {@link MAX_PATTERN_LENGTH} characters, or is not a valid regular expression.
 * These rules are conservative (some safe patterns are refused; the error says which part to rewrite)
 * but not a proof: scslre looks for attack strings that repeat one character. The second bound is the
 * input: a path longer than {@link MAX_PATH_BYTES} bytes (Linux's PATH_MAX) is refused with EPATH before
 * any pattern runs, so even a polynomial pattern that slipped through stays bounded.
 *
 * Differences from Python's `re`: `$` matches only at the very end (Python also matches before a final
 * `\n`); `.` does not match `\r`; Python-only syntax (`(?P<name>...)`, inline flags `(?i)`) is refused as
 * invalid.
 *
 * Persistent entries are literal paths (not regular expressions): a path matches itself and every path
 * below it (the earlier tool's `^P($|/)`, without treating `.` in P as a wildcard). Templates are exact
 * paths.
 */
import { createRequire } from 'node:module';
import { type AST, RegExpParser } from '@eslint-community/regexpp';
import { CloudletsError } from '../errors.js';

// scslre (and refa below it) takes ~80 ms to load; most patterns never need it (see backtrackingRisk).
const loadScslre = () => createRequire(import.meta.url)('scslre') as typeof import('scslre');

/** Longest image path classified, in bytes (Linux's PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** Longest volatile pattern accepted, in characters. */
export const MAX_PATTERN_LENGTH = 1024;

/** Refuses a path too long to be matched in bounded time. */
export function checkPathLength(path: Buffer): void {
  if (path.length > MAX_PATH_BYTES) {
    throw new CloudletsError('EPATH', `path is longer than ${MAX_PATH_BYTES} bytes`, {
      where: `${path.subarray(0, 64).toString('utf8')}…`,
    });
  }
}

/** The string a volatile pattern is matched against: one latin1 character per path byte. */
export function matchText(path: Buffer): string {
  return path.toString('latin1');
}

/** A pattern's source with non-ASCII characters spelled as their UTF-8 bytes, to match {@link matchText}. */
function toByteSource(source: string): string {
  return /^[\x00-\x7f]*$/.test(source) ? source : Buffer.from(source, 'utf8').toString('latin1');
}

const parser = new RegExpParser({ ecmaVersion: 2024 });

/** Why a pattern may backtrack catastrophically, or undefined when it is safe (rules 1-4 above). */
export function backtrackingRisk(source: string): string | undefined {
  const wrapped = `^(?:${source})`;
  const pattern = parser.parsePattern(wrapped, 0, wrapped.length, { unicode: false });
  const structural = structuralRisk(pattern);
  if (structural) return structural;
  // Without nesting (refused above), super-linear backtracking needs two quantifiers that repeat:
  // one alone, like the `.+` of `/var/log/(?!apt).+`, backtracks at most once over the path.
  if (countRepeating(pattern) < 2) return undefined;
  const result = loadScslre().analyse(
    { source: wrapped, flags: '' },
    { reportTypes: { Move: false }, maxReports: 1 },
  );
  const report = result.reports[0];
  if (!report) return undefined;
  const growth = report.exponential ? 'exponential' : 'polynomial';
  const ch = report.character.literal.source;
  if (report.type === 'Trade') {
    return `${report.startQuant.raw} and ${report.endQuant.raw} can both match ${ch} (${growth} backtracking)`;
  }
  if (report.type === 'Self') {
    return `${report.quant.raw} repeated inside ${report.parentQuant.raw} (${growth} backtracking on ${ch})`;
  }
  return `${report.quant.raw} (${growth} backtracking on ${ch})`;
}

type Node = AST.Node;

function children(node: Node): Node[] {
  switch (node.type) {
    case 'Pattern':
    case 'Group':
    case 'CapturingGroup':
      return node.alternatives;
    case 'Assertion':
      return node.kind === 'lookahead' || node.kind === 'lookbehind' ? node.alternatives : [];
    case 'Alternative':
      return node.elements;
    case 'Quantifier':
      return [node.element];
    default:
      return [];
  }
}

function repeats(node: Node): node is AST.Quantifier {
  return node.type === 'Quantifier' && node.max > 1;
}

function varies(node: Node): boolean {
  return node.type === 'Quantifier' && node.min !== node.max;
}

/** The first node below `node` passing `test`; into lookarounds only when `lookarounds`. */
function findInside(node: Node, test: (n: Node) => boolean, lookarounds = true): Node | undefined {
  for (const child of children(node)) {
    if (!lookarounds && child.type === 'Assertion') continue;
    if (test(child)) return child;
    const found = findInside(child, test, lookarounds);
    if (found) return found;
  }
  return undefined;
}

function countRepeating(node: Node): number {
  return (repeats(node) ? 1 : 0) + children(node).reduce((n, c) => n + countRepeating(c), 0);
}

function structuralRisk(root: Node): string | undefined {
  const backref = root.type === 'Backreference' ? root : findInside(root, (n) => n.type === 'Backreference');
  if (backref) return `backreference ${backref.raw} is not supported`;
  const stack: Node[] = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (repeats(node)) {
      // Bounded inside bounded (`(\.\d{1,3}){3}`) costs a constant whatever the input; anything
      // unbounded on either level multiplies with the path's length.
      const unbounded = node.max === Number.POSITIVE_INFINITY;
      const inner = findInside(
        node,
        (n) => varies(n) && (unbounded || (n as AST.Quantifier).max === Number.POSITIVE_INFINITY),
      );
      if (inner) return `${node.raw} repeats ${inner.raw} (nested repetition)`;
      const alt =
        unbounded && findInside(node, (n) => children(n).length > 1 && n.type !== 'Alternative', false);
      if (alt) return `${node.raw} repeats an alternation (use a character class)`;
    }
    stack.push(...children(node));
  }
  return undefined;
}

/**
 * Compiles a manifest's volatile patterns, refusing unsafe or invalid ones. `where` names the manifest;
 * an error reads `<where>: /volatile/3: pattern may backtrack catastrophically: ...`.
 */
export function compileVolatilePatterns(patterns: readonly string[], where = '.cloudlet/manifest'): RegExp[] {
  return patterns.map((source, i) => {
    const fail = (message: string, hint?: string) =>
      new CloudletsError('EPATTERN', `/volatile/${i}: ${message}`, { where, ...(hint ? { hint } : {}) });
    if (source.length > MAX_PATTERN_LENGTH) {
      throw fail(`pattern is longer than ${MAX_PATTERN_LENGTH} characters`);
    }
    const byteSource = toByteSource(source);
    try {
      // Validated alone first, so that wrapping it in `^(?:...)` cannot change its meaning.
      new RegExp(byteSource);
    } catch (err) {
      throw fail(`invalid regular expression: ${(err as Error).message}`);
    }
    let risk: string | undefined;
    try {
      risk = backtrackingRisk(byteSource);
    } catch (err) {
      throw fail(`pattern cannot be analysed: ${(err as Error).message}`);
    }
    if (risk) {
      throw fail(
        `pattern may backtrack catastrophically: ${risk}`,
        'volatile patterns may not nest or chain repetitions that can match the same text; see the README',
      );
    }
    return new RegExp(`^(?:${byteSource})`);
  });
}

/** A persistent or template path as bytes, without trailing slashes (`/var/log/` → `/var/log`). */
export function manifestPath(path: string): Buffer {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
  return Buffer.from(trimmed || '/', 'utf8');
}

/** `path` is `prefix` or lies below it. */
export function isAtOrBelow(path: Buffer, prefix: Buffer): boolean {
  if (prefix.length === 1 && prefix[0] === 0x2f) return true;
  // Compared in place: asked for every path of an export, for every persistent path.
  if (path.length < prefix.length || path.compare(prefix, 0, prefix.length, 0, prefix.length) !== 0)
    return false;
  return path.length === prefix.length || path[prefix.length] === 0x2f;
}
