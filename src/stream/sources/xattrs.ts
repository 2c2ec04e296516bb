/**
 * Extended attributes of a whole directory tree, read by one `getfattr` run.
 *
 * Node has no xattr API, and one process per file would cost more than the walk itself; a single
 * `getfattr -R` (Debian package `attr`) dumps the tree in one go, started while the walk begins. Its
 * `# file:` lines escape `\n`, `\r`, `=` (in attribute names) and `\` as `\ooo` octal and leave every
 * other byte raw; values are `0s<base64>` with `-e base64`.
 */

import { isUtf8 } from 'node:buffer';
import { spawn } from 'node:child_process';
import { lstatSync, readdirSync } from 'node:fs';
import { CloudletsError } from '../../errors.js';
import { plainToolEnv } from '../../util/tool-env.js';

/** Image path bytes (as latin1, a lossless key) → attribute name → raw value. */
export type TreeXattrs = Map<string, Map<string, Buffer>>;

export interface ReadTreeXattrsOptions {
  /** Kill getfattr after this long; default 10 minutes. */
  timeoutMs?: number;
  /** Refuse more than this much getfattr output; default 256 MiB. */
  maxOutputBytes?: number;
  /** The program; default `getfattr` from PATH. */
  command?: string;
  signal?: AbortSignal;
  /**
   * Top-level entries to leave out (called with the image path, `/.git`); their subtrees are not walked.
   * Only the root's own children are asked: deeper entries are always read.
   */
  prune?: (imagePath: Buffer) => boolean;
}

/** Above this many top-level names, one plain recursive run is used (argument list limits). */
const MAX_ARGS = 2000;

/** Turns getfattr's `\ooo` escapes back into bytes. */
export function unescapeGetfattr(text: Buffer): Buffer {
  if (!text.includes(0x5c)) return text;
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const b = text[i]!;
    if (b === 0x5c && isOctal(text[i + 1]) && isOctal(text[i + 2]) && isOctal(text[i + 3])) {
      out.push(((text[i + 1]! - 48) << 6) | ((text[i + 2]! - 48) << 3) | (text[i + 3]! - 48));
      i += 3;
    } else {
      out.push(b);
    }
  }
  return Buffer.from(out);
}

function isOctal(b: number | undefined): boolean {
  return b !== undefined && b >= 0x30 && b <= 0x37;
}

/** Parses getfattr output run as `getfattr -R ... .` in the image root; incremental, line by line. */
export function createGetfattrParser(): { push(chunk: Buffer): void; end(): TreeXattrs } {
  const result: TreeXattrs = new Map();
  let current: Map<string, Buffer> | undefined;
  let rest: Buffer = Buffer.alloc(0);
  const FILE = Buffer.from('# file: ');

  const line = (l: Buffer) => {
    if (l.length === 0) {
      current = undefined;
      return;
    }
    if (l.subarray(0, FILE.length).equals(FILE)) {
      const rel = unescapeGetfattr(l.subarray(FILE.length));
      // `.` is the root, `./etc/x` is `/etc/x`.
      const imagePath = rel.length === 1 && rel[0] === 0x2e ? '/' : rel.subarray(1).toString('latin1');
      current = new Map();
      result.set(imagePath, current);
      return;
    }
    if (!current) return;
    const eq = l.indexOf(0x3d);
    const name = unescapeGetfattr(eq < 0 ? l : l.subarray(0, eq)).toString('utf8');
    const raw = eq < 0 ? '' : l.subarray(eq + 1).toString('latin1');
    current.set(name, decodeValue(raw));
  };

  return {
    push(chunk) {
      let buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
      let nl = buf.indexOf(0x0a);
      while (nl >= 0) {
        line(buf.subarray(0, nl));
        buf = buf.subarray(nl + 1);
        nl = buf.indexOf(0x0a);
      }
      rest = Buffer.from(buf);
    },
    end() {
      if (rest.length > 0) line(rest);
      return result;
    },
  };
}

function decodeValue(raw: string): Buffer {
  if (raw.startsWith('0s')) return Buffer.from(raw.slice(2), 'base64');
  if (raw.startsWith('0x')) return Buffer.from(raw.slice(2), 'hex');
  if (raw.startsWith('"') && raw.endsWith('"'))
    return unescapeGetfattr(Buffer.from(raw.slice(1, -1), 'latin1'));
  return Buffer.from(raw, 'latin1');
}

/**
 * Every extended attribute of every file below `root` (not following symlinks), keyed by image path.
 * Fails with ESOURCE if getfattr is missing, fails, overruns its time or output bounds.
 *
 * With `prune`, the kept top-level names are passed to a recursive run and the root (and top-level
 * symlinks) to a non-recursive one, so a pruned tree (a repository's `.git`) is never walked. Names
 * that are not valid UTF-8 cannot be passed as arguments: then one run over `.` reads everything.
 */
export function readTreeXattrs(root: string, opts: ReadTreeXattrsOptions = {}): Promise<TreeXattrs> {
  return startTreeXattrs(root, { ...opts, deepRuns: opts.prune ? 1 : 0 }).all();
}

/**
 * A tree's attributes read by several getfattr runs side by side, each over consecutive top-level
 * directories, so that a reader going through the tree in path order waits only for the run that
 * covers where it is, not for the whole tree: the first entries of an export go out while /usr is
 * still being read.
 */
export interface TreeXattrRuns {
  /** What the finished runs read, merged. */
  readonly map: TreeXattrs;
  /**
   * Undefined when the attributes of `imagePath` are in `map`; else a promise for when they are, which
   * rejects if a run failed.
   */
  ready(imagePath: Buffer): Promise<void> | undefined;
  /** Every run finished: the whole tree's attributes. */
  all(): Promise<TreeXattrs>;
}

export interface StartTreeXattrsOptions extends ReadTreeXattrsOptions {
  /**
   * Recursive runs over the top-level directories: the first takes one, the next two, the next four...
   * and the last the rest (so the first entries wait for little). 0: one run over `.`, as without
   * `prune`. 1: one run over `.` too when nothing at the top level is pruned, for a reader that needs
   * the whole tree before its first entry (each run is a process to start). Default 3.
   */
  deepRuns?: number;
}

export function startTreeXattrs(root: string, opts: StartTreeXattrsOptions = {}): TreeXattrRuns {
  const deepRuns = opts.deepRuns ?? 3;
  const split = deepRuns > 0 ? topLevelArgs(root, opts.prune ?? (() => false)) : undefined;
  const map: TreeXattrs = new Map();
  /** Each run, and whether it has finished (its result merged into `map`). */
  const runs: { done: boolean; finished: Promise<void> }[] = [];
  const start = (args: string[]) => {
    const run = { done: false, finished: Promise.resolve() };
    run.finished = runGetfattr(root, args, opts).then((found) => {
      for (const [k, v] of found) map.set(k, v);
      run.done = true;
    });
    // Observed through ready() or all(); a run nobody waits for must not be an unhandled rejection.
    run.finished.catch(() => undefined);
    runs.push(run);
  };
  /** Top-level directory name (latin1) → index of its run; anything else is in run 0. */
  const runOf = new Map<string, number>();
  if (!split || (deepRuns === 1 && !split.pruned)) {
    start(['-R', '.']);
  } else {
    start(['.', ...split.flat]);
    let next = 0;
    for (let k = 0; k < deepRuns && next < split.deep.length; k++) {
      const count = k === deepRuns - 1 ? split.deep.length - next : 2 ** k;
      const group = split.deep.slice(next, next + count);
      next += group.length;
      for (const { name } of group) runOf.set(name, runs.length);
      start(['-R', ...group.map((d) => d.arg)]);
    }
  }
  /** Runs 0 to this one have all finished. */
  let doneThrough = -1;
  /** Undefined when runs 0 to `i` have finished, else a promise for when they have. */
  const through = (i: number): Promise<void> | undefined => {
    while (runs[doneThrough + 1]?.done) doneThrough++;
    if (i <= doneThrough) return undefined;
    return Promise.all(runs.slice(0, i + 1).map((r) => r.finished)).then(() => {});
  };
  let lastTop: Buffer | undefined;
  let lastRun = 0;
  return {
    map,
    ready(imagePath) {
      if (runs.length === 1) return through(0);
      // Consecutive paths mostly share their top-level name: looked up once per change, and compared
      // in place (this runs for every path).
      const slash = imagePath.indexOf(0x2f, 1);
      const end = slash < 0 ? imagePath.length : slash;
      if (
        !lastTop ||
        end - 1 !== lastTop.length ||
        imagePath.compare(lastTop, 0, lastTop.length, 1, end) !== 0
      ) {
        lastTop = Buffer.from(imagePath.subarray(1, end));
        lastRun = runOf.get(lastTop.toString('latin1')) ?? 0;
      }
      // The earlier runs too: run 0 holds the root, which every tree's stream starts with.
      return through(lastRun);
    },
    async all() {
      await Promise.all(runs.map((r) => r.finished));
      return map;
    },
  };
}

/**
 * `./name` arguments for the kept top-level entries in byte order (directories, each with its name as
 * latin1, and the rest), or undefined to fall back to one run over `.`.
 */
function topLevelArgs(
  root: string,
  prune: (imagePath: Buffer) => boolean,
): { flat: string[]; deep: { name: string; arg: string }[]; pruned: boolean } | undefined {
  let names: Buffer[];
  try {
    names = readdirSync(root, { encoding: 'buffer' }).sort(Buffer.compare);
  } catch {
    return undefined; // the plain run reports the problem
  }
  if (names.length > MAX_ARGS) return undefined;
  const flat: string[] = [];
  const deep: { name: string; arg: string }[] = [];
  let pruned = false;
  for (const name of names) {
    if (prune(Buffer.concat([Buffer.from('/'), name]))) {
      pruned = true;
      continue;
    }
    if (!isUtf8(name)) return undefined;
    const arg = `./${name.toString('utf8')}`;
    let isDir = false;
    try {
      isDir = lstatSync(`${root}/${name.toString('utf8')}`).isDirectory();
    } catch {
      return undefined; // changed under us: let the plain run see it
    }
    // Only directories have anything below them; other entries are read without recursion.
    if (isDir) deep.push({ name: name.toString('latin1'), arg });
    else flat.push(arg);
  }
  return { flat, deep, pruned };
}

function runGetfattr(root: string, paths: string[], opts: ReadTreeXattrsOptions): Promise<TreeXattrs> {
  const timeoutMs = opts.timeoutMs ?? 10 * 60_000;
  const maxOutput = opts.maxOutputBytes ?? 256 * 1024 * 1024;
  const command = opts.command ?? 'getfattr';
  const where = root;
  return new Promise((resolve, reject) => {
    const recursive = paths[0] === '-R';
    const rest = recursive ? paths.slice(1) : paths;
    const child = spawn(
      command,
      [
        ...(recursive ? ['-R'] : []),
        '-P',
        '-h',
        '-d',
        '-m',
        '-',
        '-e',
        'base64',
        '--absolute-names',
        ...rest,
      ],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: plainToolEnv(),
      },
    );
    const parser = createGetfattrParser();
    let outBytes = 0;
    let stderr = '';
    let failure: CloudletsError | undefined;
    const fail = (err: CloudletsError) => {
      if (!failure) failure = err;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () =>
        fail(
          new CloudletsError('ESOURCE', `reading extended attributes took over ${timeoutMs} ms`, { where }),
        ),
      timeoutMs,
    );
    const onAbort = () =>
      fail(new CloudletsError('EINTERRUPTED', 'interrupted while reading extended attributes'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > maxOutput) {
        fail(new CloudletsError('ESOURCE', `extended attributes exceed ${maxOutput} bytes`, { where }));
        return;
      }
      parser.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString('utf8');
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      fail(
        err.code === 'ENOENT'
          ? new CloudletsError('ESOURCE', `${command} not found: it reads extended attributes`, {
              where,
              hint: 'apt-get install attr',
              cause: err,
            })
          : new CloudletsError('ESOURCE', `cannot run ${command}: ${err.message}`, { where, cause: err }),
      );
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure) return reject(failure);
      if (code !== 0) {
        const first = stderr.split('\n').find((l) => l.trim()) ?? `exit code ${code}`;
        return reject(
          new CloudletsError('ESOURCE', `reading extended attributes failed: ${first.trim()}`, {
            where,
          }),
        );
      }
      resolve(parser.end());
    });
  });
}
