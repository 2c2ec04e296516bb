// The git wrapper and the git side of versioning. Paths go to git as NUL-separated bytes on stdin, never
// as arguments; the index is written with plumbing so a commit costs a few processes, not one per file.
import { copyFileSync, existsSync, lstatSync, mkdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { CloudletsError } from '../errors.js';
import type { HostStat } from '../stream/entry.js';
import type { Capture } from './capture.js';
import { type GitIndex, readGitIndex } from './git-index.js';
import { showPath } from './metadata.js';
import { fromRepoPath, needsEscape, toRepoPath } from './repo-path.js';
import { type RunResult, runProgram } from './run.js';

export interface GitOptions {
  input?: Buffer | string | Readable;
  okCodes?: number[];
  /** A throwaway index (status, diff) instead of `.git/index`. */
  indexFile?: string;
  inherit?: boolean;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Extra `-c` settings for this call only. */
  config?: readonly string[];
}

/** Settings on every call: no hooks, no fsmonitor command, no line-ending or filter rewriting. */
const SAFE_CONFIG = [
  'core.hooksPath=/dev/null',
  'core.fsmonitor=false',
  'core.autocrlf=false',
  'core.safecrlf=false',
  'core.protectNTFS=false',
  'core.protectHFS=false',
  'commit.gpgSign=false',
  'gc.auto=0',
  'core.quotePath=false',
];

/**
 * For a commit's update-index runs that may hash many files (re-staging tracked files, a first import):
 * every non-empty blob goes into one pack per process (git's bulk check-in) instead of one loose file per
 * object. Creating thousands of small files is what made a commit slow, and reading loose objects back
 * made a checkout slow. Never a setting on other calls: it would also make `git diff` call every file
 * binary.
 */
const PACK_BLOBS = ['core.bigFileThreshold=0'];

/** Attributes that win over any `.gitattributes` inside the image: bytes in, the same bytes out. */
const INFO_ATTRIBUTES =
  '# written by cloudlets: store image files byte for byte\n* -text -filter -ident -working-tree-encoding\n';

export function vcsEnv(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...base,
    GIT_TERMINAL_PROMPT: '0',
    LC_ALL: 'C',
    HGPLAIN: '1',
    HGENCODING: 'utf-8',
  };
  // git deflates every new object with a fresh zlib stream (a few hundred KiB of state). glibc gives that
  // memory back to the system as each object ends (the heap's top is trimmed past 128 KiB), and the next
  // object faults it in again, zeroed: half of what `git add` of 2,000 small files spends, measured. A
  // trim threshold keeps it; the peak stays the same.
  env.MALLOC_TRIM_THRESHOLD_ ??= String(32 << 20);
  return env;
}

export function git(dir: string, args: readonly string[], opts: GitOptions = {}): Promise<RunResult> {
  const env = vcsEnv(opts.env);
  if (opts.indexFile) env.GIT_INDEX_FILE = opts.indexFile;
  const config = [...SAFE_CONFIG, `safe.directory=${dir}`, ...(opts.config ?? [])].flatMap((c) => ['-c', c]);
  return runProgram('git', [...config, '-C', dir, ...args], {
    cwd: dir,
    env,
    input: opts.input,
    okCodes: opts.okCodes,
    inherit: opts.inherit,
    signal: opts.signal,
    display: `git ${args.join(' ')}`,
  });
}

/** Identity for commits: the user's git configuration, else the environment, else a fixed default. */
export async function identityEnv(dir: string): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {};
  const out = await git(dir, ['config', '-z', '--get-regexp', '^user\\.(name|email)$'], { okCodes: [0, 1] });
  const set = new Map<string, string>();
  for (const rec of out.stdout.toString().split('\0')) {
    const nl = rec.indexOf('\n');
    // The last value wins, as for `git config user.name`; a key without a value is boolean true.
    if (rec) set.set(nl < 0 ? rec : rec.slice(0, nl), nl < 0 ? 'true' : rec.slice(nl + 1).trim());
  }
  const [name, email] = [set.get('user.name'), set.get('user.email')];
  if (!name && !process.env.GIT_AUTHOR_NAME) env.GIT_AUTHOR_NAME = env.GIT_COMMITTER_NAME = 'cloudlets';
  if (!email && !process.env.GIT_AUTHOR_EMAIL)
    env.GIT_AUTHOR_EMAIL = env.GIT_COMMITTER_EMAIL = 'cloudlets@localhost';
  return { ...process.env, ...env };
}

export function isGitRepo(dir: string): boolean {
  return existsSync(join(dir, '.git'));
}

/** Settings a repository needs before its first checkout; also applied after a clone. */
export async function configureGitRepo(dir: string): Promise<void> {
  mkdirSync(join(dir, '.git', 'info'), { recursive: true });
  writeFileSync(join(dir, '.git', 'info', 'attributes'), INFO_ATTRIBUTES);
  // Volatile and other untracked files are cloudlets' business: plain `git status` stays quiet about them.
  await git(dir, ['config', 'status.showUntrackedFiles', 'no']);
  await git(dir, ['config', 'core.protectNTFS', 'false']);
}

export async function gitInit(dir: string): Promise<void> {
  await git(dir, ['init', '-q']);
  await configureGitRepo(dir);
}

export async function gitHead(dir: string): Promise<string | undefined> {
  const r = await git(dir, ['rev-parse', '-q', '--verify', 'HEAD^{commit}'], { okCodes: [0, 1, 128] });
  return r.code === 0 ? r.stdout.toString().trim() : undefined;
}

export async function gitResolve(dir: string, rev: string): Promise<string> {
  const r = await git(dir, ['rev-parse', '-q', '--verify', '--end-of-options', `${rev}^{commit}`], {
    okCodes: [0, 1, 128],
  });
  if (r.code !== 0)
    throw new CloudletsError('EUSAGE', `unknown revision "${rev}"`, {
      where: dir,
      hint: 'see `cloudlets log IMAGE`',
    });
  return r.stdout.toString().trim();
}

/** A file's bytes at a revision, `undefined` when absent there. */
export async function gitReadAt(dir: string, rev: string, repoPath: string): Promise<Buffer | undefined> {
  const r = await git(dir, ['cat-file', 'blob', `${rev}:${repoPath}`], { okCodes: [0, 128] });
  return r.code === 0 ? r.stdout : undefined;
}

/**
 * Objects by name from one `git cat-file --batch` (one process, one view of the repository); undefined
 * for a name that is missing or ambiguous. Names hold no line break (the caller checks user input).
 */
async function catBatch(
  dir: string,
  requests: readonly string[],
): Promise<({ sha: string; body: Buffer } | undefined)[]> {
  const out = (await git(dir, ['cat-file', '--batch'], { input: `${requests.join('\n')}\n` })).stdout;
  // Each answer: `SHA TYPE SIZE\n` + SIZE bytes + `\n`, or `NAME missing\n` (or `ambiguous`).
  const answers: ({ sha: string; body: Buffer } | undefined)[] = [];
  let at = 0;
  for (const req of requests) {
    const nl = out.indexOf(0x0a, at);
    if (nl < 0) throw new CloudletsError('EEXTERNAL', `git cat-file: no answer for ${req}`, { where: dir });
    const header = out.subarray(at, nl).toString();
    const m = /^([0-9a-f]{40,64}) (\w+) (\d+)$/.exec(header);
    if (!m) {
      answers.push(undefined);
      at = nl + 1;
      continue;
    }
    const size = Number(m[3]);
    answers.push({ sha: m[1]!, body: out.subarray(nl + 1, nl + 1 + size) });
    at = nl + 1 + size + 1;
  }
  return answers;
}

/** HEAD (undefined before the first commit) and a file's bytes there, from one process. */
export async function gitHeadAndFile(
  dir: string,
  repoPath: string,
): Promise<{ head: string | undefined; bytes: Buffer | undefined }> {
  const [head, file] = await catBatch(dir, ['HEAD^{commit}', `HEAD^{commit}:${repoPath}`]);
  return { head: head?.sha, bytes: head ? file?.body : undefined };
}

/** What a checkout needs to know before git switches: both revisions and both metadata files' text. */
export interface CheckoutTargets {
  /** HEAD; undefined before the first commit. */
  oldRev: string | undefined;
  target: string;
  beforeText: string;
  afterText: string;
}

/**
 * HEAD, `rev` and the metadata file at each, from one `git cat-file --batch` (one process, one view of
 * the repository) instead of four.
 */
export async function gitCheckoutTargets(
  dir: string,
  rev: string,
  metadataPath: string,
): Promise<CheckoutTargets> {
  const unknown = () =>
    new CloudletsError('EUSAGE', `unknown revision "${rev}"`, {
      where: dir,
      hint: 'see `cloudlets log IMAGE`',
    });
  // A request is one line; no revision name holds a line break.
  if (/[\n\r]/.test(rev)) throw unknown();
  const [head, target, before, after] = await catBatch(dir, [
    'HEAD^{commit}',
    `${rev}^{commit}`,
    `HEAD:${metadataPath}`,
    `${rev}^{commit}:${metadataPath}`,
  ]);
  if (!target) throw unknown();
  return {
    oldRev: head?.sha,
    target: target.sha,
    beforeText: head && before ? before.body.toString('utf8') : '',
    afterText: after ? after.body.toString('utf8') : '',
  };
}

export interface ContentChanges {
  added: Buffer[];
  modified: Buffer[];
  deleted: Buffer[];
  /** The metadata file itself changed (it is left out of the lists). */
  metadataChanged?: boolean;
  /** git: every staged difference, repository paths, as the commit records it. */
  staged?: StagedEntry[];
}

/** One index entry that differs from the parent commit; mode `000000` when it is gone. */
export interface StagedEntry {
  mode: string;
  sha: string;
  path: Buffer;
}

const METADATA_REPO_BYTES = Buffer.from('.cloudlet/metadata');

const nulList = (paths: readonly Buffer[]): Buffer =>
  Buffer.concat(paths.flatMap((p) => [p, Buffer.from([0])]));

function splitNul(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = b.indexOf(0); i !== -1; i = b.indexOf(0, start)) {
    out.push(b.subarray(start, i));
    start = i + 1;
  }
  return out;
}

/**
 * Makes the index hold exactly the captured content plus the metadata file. `indexFile` stages into a
 * copy (status, diff). Unchanged files are not read again: `update-index` trusts matching stat data.
 */
export async function gitStage(
  dir: string,
  cap: Capture,
  /** The metadata file's text when it is not on disk (status, diff); undefined: stage the file on disk. */
  metadataText: string | undefined,
  opts: { indexFile?: string } = {},
): Promise<void> {
  const o = { indexFile: opts.indexFile };
  const current = splitNul((await git(dir, ['ls-files', '-z', '--cached'], o)).stdout);
  const gone = goneFromIndex(current, cap);
  if (gone.length > 0)
    await git(dir, ['update-index', '--force-remove', '-z', '--stdin'], { ...o, input: nulList(gone) });
  const byPath = cap.content.filter((p) => !needsEscape(p, '.git')).map((p) => p.subarray(1));
  if (metadataText === undefined) byPath.push(Buffer.from('.cloudlet/metadata'));
  if (byPath.length > 0) {
    await git(dir, ['update-index', '--add', '--replace', '-z', '--stdin'], { ...o, input: nulList(byPath) });
  }
  await stageByHash(dir, cap, metadataText, o);
}

/**
 * Membership in a list sorted by bytes (the index's order, as `ls-files` prints it), for queries that come
 * in the same order (the walk's): a cursor, with no string or set made per path. A list or a query out of
 * order falls back to a set.
 */
function sortedMembership(sorted: readonly Buffer[]): (p: Buffer) => boolean {
  let set: Set<string> | undefined;
  const bySet = (p: Buffer) => {
    set ??= new Set(sorted.map((q) => q.toString('latin1')));
    return set.has(p.toString('latin1'));
  };
  for (let i = 1; i < sorted.length; i++) if (sorted[i - 1]!.compare(sorted[i]!) > 0) return bySet;
  let at = 0;
  let last: Buffer | undefined;
  return (p) => {
    if (set || (last && last.compare(p) > 0)) return bySet(p);
    last = p;
    while (at < sorted.length && sorted[at]!.compare(p) < 0) at++;
    return at < sorted.length && sorted[at]!.equals(p);
  };
}

/**
 * The entries of `current` (repository paths) that no image path of `content` names, by merging the two
 * sorted lists; undefined if either is out of order (then the caller uses a set).
 */
function mergeGone(current: readonly Buffer[], content: readonly Buffer[]): Buffer[] | undefined {
  const sorted = (l: readonly Buffer[]) => l.every((p, i) => i === 0 || l[i - 1]!.compare(p) <= 0);
  if (!sorted(current) || !sorted(content)) return undefined;
  const gone: Buffer[] = [];
  let j = 0;
  for (const p of current) {
    // An image path is its repository path after the leading slash: compared from byte 1 on.
    while (j < content.length && p.compare(content[j]!, 1) > 0) j++;
    if (j === content.length || p.compare(content[j]!, 1) !== 0) gone.push(p);
  }
  return gone;
}

/** Index entries (repository paths) the capture no longer holds. */
function goneFromIndex(current: Buffer[], cap: Capture): Buffer[] {
  // Escaped names sort elsewhere than their image paths: then a set.
  if (!cap.content.some((p) => needsEscape(p, '.git'))) {
    const gone = mergeGone(current, cap.content);
    if (gone) return gone.filter((p) => !p.equals(METADATA_REPO_BYTES));
  }
  const want = new Set(
    cap.content.map((p) =>
      (needsEscape(p, '.git') ? toRepoPath(p, '.git') : p.subarray(1)).toString('latin1'),
    ),
  );
  want.add('.cloudlet/metadata');
  return current.filter((p) => !want.has(p.toString('latin1')));
}

export interface StreamingStage {
  /** One captured content path (image path), as the walk finds it, with what the host said of it. */
  add(imagePath: Buffer, stat?: HostStat): void;
  /** After the walk and with the metadata file written: the rest of the staging; the index is then complete. */
  finish(cap: Capture): Promise<void>;
  /** The walk failed: stop update-index before it writes the index. */
  abort(): void;
}

/**
 * Repository paths for a git process's `--stdin -z`, written NUL-terminated in batches of about
 * `batchBytes`: a write per path would be a system call each.
 */
function pathFeed(batchBytes: number): {
  stream: PassThrough;
  push(repoPath: Buffer): void;
  end(): void;
} {
  const stream = new PassThrough();
  const NUL = Buffer.from([0]);
  let batch: Buffer[] = [];
  let bytes = 0;
  const flush = () => {
    if (batch.length > 0) stream.write(Buffer.concat(batch));
    batch = [];
    bytes = 0;
  };
  return {
    stream,
    push(repoPath) {
      batch.push(repoPath, NUL);
      bytes += repoPath.length + 1;
      if (bytes >= batchBytes) flush();
    },
    end() {
      flush();
      stream.end();
    },
  };
}

/**
 * Stages into the real index while the tree is still being walked. Same result as `gitStage(dir, cap)`.
 *
 * With an index this reader takes (readGitIndex), its stat cache decides: one `update-index --stdin`,
 * started at once, is handed each path the walk finds new or changed (git checks and hashes it, as
 * `git add` would), then the metadata file; entries no longer captured are removed after. Otherwise
 * (the first commit, a split or sparse index, version 4) git refreshes the index itself: see
 * startRefreshStage.
 */
export function startGitStage(dir: string): StreamingStage {
  // Another index than the repository's own (GIT_INDEX_FILE) is git's to find.
  const index = process.env.GIT_INDEX_FILE ? undefined : readGitIndex(join(dir, '.git', 'index'));
  return index ? startIndexedStage(dir, index) : startRefreshStage(dir);
}

function startIndexedStage(dir: string, index: GitIndex): StreamingStage {
  const stop = new AbortController();
  // Small batches: git hashes each changed file as soon as the walk finds it, instead of idling until a
  // large batch fills (a commit of 2,000 changed files is only some 80 KB of names).
  const feed = pathFeed(4096);
  const matched = new Uint8Array(index.length);
  let escapedAny = false;
  // Blobs go to one pack, as for `git add -u` before: creating a file per object costs more here.
  const updating = git(dir, ['update-index', '--add', '--replace', '-z', '--stdin'], {
    input: feed.stream,
    signal: stop.signal,
    config: PACK_BLOBS,
  });
  updating.catch(() => {});
  const abort = () => {
    stop.abort();
    feed.stream.destroy();
  };
  return {
    add(p, stat) {
      if (needsEscape(p, '.git')) {
        escapedAny = true; // placed by hash in finish()
        return;
      }
      const i = index.find(p);
      if (i >= 0) {
        matched[i] = 1;
        if (stat && index.unchanged(i, stat)) return;
      }
      feed.push(p.subarray(1));
    },
    abort,
    async finish(cap) {
      // Rewritten since the index was read.
      feed.push(METADATA_REPO_BYTES);
      feed.end();
      await updating;
      const all = Array.from({ length: index.length }, (_, i) => index.path(i));
      const gone = escapedAny
        ? goneFromIndex(all, cap)
        : all.filter((p, i) => matched[i] === 0 && !p.equals(METADATA_REPO_BYTES));
      if (gone.length > 0)
        await git(dir, ['update-index', '--force-remove', '-z', '--stdin'], { input: nulList(gone) });
      await stageByHash(dir, cap, undefined, {});
    },
  };
}

/**
 * `startGitStage` without reading the index (there is none yet, or it is in a form readGitIndex leaves
 * to git):
 *
 * 1. Refresh, from the start: `git add -u` re-stages what the index tracks, trusting its stat data, so
 *    git hashes the changed files while the manifest loads and the walk runs. Only a head start: if it
 *    fails (a tracked path became unreadable or special), the index is left as it was and pass 2 does it.
 *    Entries of nested repositories (escaped names, not on disk) come out here and back in by hash.
 * 2. `update-index --stdin` takes each path the walk finds that the refresh did not already stage.
 * 3. Entries that are gone are removed (`--replace` already dropped any a new path displaced).
 * Only one git process writes the index at a time: each waits for the one before.
 */
function startRefreshStage(dir: string): StreamingStage {
  const stop = new AbortController();
  const refreshed = git(dir, ['add', '-u'], { signal: stop.signal, config: PACK_BLOBS }).then(
    () => true,
    () => false,
  );
  // Listed after the refresh: a tracked file it found missing is out of the index, so pass 2 takes it if
  // it is back.
  const listed = refreshed.then(async (ok) => ({
    current: splitNul((await git(dir, ['ls-files', '-z', '--cached'], { signal: stop.signal })).stdout),
    ok,
  }));
  // Large batches: these are the paths new to the index, all of a first import.
  const feed = pathFeed(64 * 1024);
  /** Whether the refresh staged a repository path (none when it failed); undefined until listed. */
  let staged: ((repoPath: Buffer) => boolean) | undefined;
  const found: Buffer[] = [];
  const take = (repoPath: Buffer) => {
    if (!staged!(repoPath)) feed.push(repoPath);
  };
  const ready = listed.then(({ current, ok }) => {
    staged = ok ? sortedMembership(current) : () => false;
    for (const p of found) take(p);
    found.length = 0;
    return current;
  });
  // Paths new to the index: one pack for a first import, loose objects (as git add) for the few of later commits.
  const updating = ready.then((current) =>
    git(dir, ['update-index', '--add', '--replace', '-z', '--stdin'], {
      input: feed.stream,
      signal: stop.signal,
      config: current.length === 0 ? PACK_BLOBS : [],
    }),
  );
  // Until finish() awaits them, a failure must not surface as an unhandled rejection.
  ready.catch(() => {});
  updating.catch(() => {});
  const abort = () => {
    stop.abort();
    feed.stream.destroy();
  };
  return {
    add(p) {
      if (needsEscape(p, '.git')) return; // placed by hash in finish()
      if (staged) take(p.subarray(1));
      else found.push(p.subarray(1));
    },
    abort,
    async finish(cap) {
      let current: Buffer[];
      try {
        current = await ready;
      } catch (err) {
        abort();
        throw err;
      }
      // Rewritten since the refresh staged it.
      feed.push(METADATA_REPO_BYTES);
      feed.end();
      await updating;
      const gone = goneFromIndex(current, cap);
      if (gone.length > 0)
        await git(dir, ['update-index', '--force-remove', '-z', '--stdin'], { input: nulList(gone) });
      await stageByHash(dir, cap, undefined, {});
    },
  };
}

/** Blobs git will not take by path (under a nested .git) and the metadata text, placed by hash. */
async function stageByHash(
  dir: string,
  cap: Capture,
  metadataText: string | undefined,
  o: { indexFile?: string | undefined },
): Promise<void> {
  const escaped = cap.content.filter((p) => needsEscape(p, '.git'));
  const infoLines: Buffer[] = [];
  const files = escaped.filter((p) => !lstatSync(Buffer.concat([Buffer.from(dir), p])).isSymbolicLink());
  if (files.length > 0) {
    const abs = files.map((p) => Buffer.concat([Buffer.from(dir), p]));
    if (abs.some((p) => p.includes(0x0a))) {
      throw new CloudletsError('ENOTSUP', 'a file name under a nested .git holds a newline', { where: dir });
    }
    const shas = (
      await git(dir, ['hash-object', '-w', '--no-filters', '--stdin-paths'], {
        input: Buffer.concat(abs.flatMap((p) => [p, Buffer.from('\n')])),
      })
    ).stdout
      .toString()
      .trim()
      .split('\n');
    files.forEach((p, i) => {
      const mode = lstatSync(Buffer.concat([Buffer.from(dir), p])).mode & 0o111 ? '100755' : '100644';
      infoLines.push(Buffer.from(`${mode} ${shas[i]}\t`), toRepoPath(p, '.git'), Buffer.from([0]));
    });
  }
  for (const p of escaped.filter((q) => !files.includes(q))) {
    const target = readlinkSync(Buffer.concat([Buffer.from(dir), p]), { encoding: 'buffer' });
    const sha = (await git(dir, ['hash-object', '-w', '--stdin'], { input: target })).stdout
      .toString()
      .trim();
    infoLines.push(Buffer.from(`120000 ${sha}\t`), toRepoPath(p, '.git'), Buffer.from([0]));
  }
  if (metadataText !== undefined) {
    const metaSha = (await git(dir, ['hash-object', '-w', '--stdin'], { input: metadataText })).stdout
      .toString()
      .trim();
    infoLines.push(Buffer.from(`100644 ${metaSha}\t.cloudlet/metadata\0`));
  }
  if (infoLines.length > 0)
    await git(dir, ['update-index', '-z', '--index-info'], { ...o, input: Buffer.concat(infoLines) });
}

/** A copy of the index to stage into without touching the real one. */
export function scratchIndex(dir: string, tmp: string): string {
  const file = join(tmp, 'index');
  const real = join(dir, '.git', 'index');
  if (existsSync(real)) copyFileSync(real, file);
  return file;
}

/** What the staged index changes against `rev` (or everything, with no revision yet). */
export async function gitStagedChanges(
  dir: string,
  rev: string | undefined,
  indexFile?: string,
): Promise<ContentChanges> {
  const o = { indexFile };
  const res: ContentChanges = { added: [], modified: [], deleted: [] };
  const staged: StagedEntry[] = [];
  if (!rev) {
    // `MODE SHA STAGE<TAB>PATH`
    for (const rec of splitNul((await git(dir, ['ls-files', '-z', '--stage'], o)).stdout)) {
      const tab = rec.indexOf(9);
      const [mode = '', sha = ''] = rec.subarray(0, tab).toString().split(' ');
      const path = rec.subarray(tab + 1);
      res.added.push(path);
      staged.push({ mode, sha, path });
    }
  } else {
    // `:SRCMODE DSTMODE SRCSHA DSTSHA STATUS`, then the path
    const parts = splitNul(
      (await git(dir, ['diff-index', '--cached', '-z', '--raw', '--no-renames', '--no-abbrev', rev], o))
        .stdout,
    );
    for (let i = 0; i + 1 < parts.length; i += 2) {
      const [, mode = '', , sha = '', st = ''] = parts[i]!.toString().split(' ');
      const path = parts[i + 1]!;
      if (st === 'U') {
        throw new CloudletsError('EEXTERNAL', `${showPath(fromRepoPath(path, '.git'))} is still unmerged`, {
          where: dir,
          hint: 'resolve the conflict (cloudlets git IMAGE status), then commit again',
        });
      }
      const list = st === 'A' ? res.added : st === 'D' ? res.deleted : res.modified;
      list.push(path);
      staged.push({ mode, sha, path });
    }
  }
  const isMeta = (p: Buffer) => p.equals(METADATA_REPO_BYTES);
  const img = (l: Buffer[]) => l.filter((p) => !isMeta(p)).map((p) => fromRepoPath(p, '.git'));
  const metadataChanged = [...res.added, ...res.modified].some(isMeta);
  return {
    added: img(res.added),
    modified: img(res.modified),
    deleted: img(res.deleted),
    metadataChanged,
    staged,
  };
}

export interface LogEntry {
  rev: string;
  author: string;
  date: string;
  subject: string;
}

export async function gitLog(dir: string, max?: number): Promise<LogEntry[]> {
  if (!(await gitHead(dir))) return [];
  const args = ['log', '-z', '--format=%H%x1f%an <%ae>%x1f%aI%x1f%s'];
  if (max !== undefined) args.push(`-n${max}`);
  const out = (await git(dir, args)).stdout.toString('utf8');
  return out
    .split('\0')
    .filter(Boolean)
    .map((rec) => {
      const [rev = '', author = '', date = '', subject = ''] = rec.split('\x1f');
      return { rev, author, date, subject };
    });
}

/** Unified diff of content (the metadata file left out: it is shown as readable lines instead). */
export async function gitDiff(
  dir: string,
  from: string,
  to: string | undefined,
  indexFile?: string,
): Promise<Buffer> {
  const base = ['diff', '--no-ext-diff', '--no-textconv', '--no-renames', '--no-color'];
  const revs = to === undefined ? ['--cached', from] : [from, to];
  return (await git(dir, [...base, ...revs, '--', '.', ':(exclude).cloudlet/metadata'], { indexFile }))
    .stdout;
}

/**
 * `git pull` with a merge (never a rebase). Returns the paths left unmerged (the merge is then not
 * committed yet); any other failure throws.
 */
export async function gitPull(dir: string, src: string | undefined): Promise<Buffer[]> {
  const args = ['pull', '-q', '--no-rebase', '--no-edit', '--no-verify'];
  if (src) args.push('--', src);
  const res = await git(dir, args, { env: await identityEnv(dir), okCodes: [0, 1] });
  if (res.code === 0) return [];
  const unmerged = splitNul((await git(dir, ['diff', '--name-only', '--diff-filter=U', '-z'])).stdout);
  if (unmerged.length === 0) {
    throw new CloudletsError(
      'EEXTERNAL',
      `git pull failed: ${(res.stderr || res.stdout.toString()).trim()}`,
      { where: dir },
    );
  }
  return unmerged;
}

/** Stage `n` (1 base, 2 ours, 3 theirs) of a conflicted path; empty when that side has none. */
export async function gitConflictStage(dir: string, n: 1 | 2 | 3, repoPath: string): Promise<Buffer> {
  const r = await git(dir, ['cat-file', 'blob', `:${n}:${repoPath}`], { okCodes: [0, 128] });
  return r.code === 0 ? r.stdout : Buffer.alloc(0);
}

/** Marks a resolved path and commits the merge with git's prepared message. */
export async function gitFinishMerge(dir: string, repoPath: string): Promise<void> {
  await git(dir, ['add', '--', repoPath]);
  await git(dir, ['commit', '-q', '--no-edit', '--no-verify'], { env: await identityEnv(dir) });
}

export async function isMergeCommit(dir: string): Promise<boolean> {
  const r = await git(dir, ['rev-parse', '-q', '--verify', 'HEAD^2'], { okCodes: [0, 1, 128] });
  return r.code === 0;
}

/** Image paths (latin1 keys) whose content differs between two revisions. */
export async function gitChangedPaths(dir: string, from: string, to: string): Promise<Set<string>> {
  const out = (await git(dir, ['diff-tree', '-r', '-z', '--name-only', '--no-renames', from, to])).stdout;
  return new Set(splitNul(out).map((p) => fromRepoPath(p, '.git').toString('latin1')));
}
