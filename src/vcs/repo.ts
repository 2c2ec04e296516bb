// Versioning an image directory: the commands' library. Each function returns data; the CLI prints it.
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CloudletsError } from '../errors.js';
import type { HostStat } from '../stream/entry.js';
import { openDirectorySource } from '../stream/sources/dir.js';
import { readTreeXattrs, type TreeXattrs } from '../stream/sources/xattrs.js';
import { removeWorkDir } from '../util/scratch-dir.js';
import { type Capture, captureSource, isRepositoryPath } from './capture.js';
import * as G from './git.js';
import { gitCommit, gitIdents } from './git-commit.js';
import * as H from './hg.js';
import {
  diffMetadata,
  diffMetadataText,
  formatMetadata,
  formatMetadataLines,
  showPath as formatPath,
  type MetadataChange,
  type MetaRecord,
  mergeMetadata,
  parseMetadata,
} from './metadata.js';
import { escapedDirs, fromRepoPath, partlyEscaped, type Reserved } from './repo-path.js';
import {
  assertImagePath,
  assertRealParents,
  type RestoreResult,
  removeStale,
  restoreMetadata,
  sameRecord,
} from './restore.js';

export type VcsKind = 'git' | 'hg';

export interface ImageVcsOptions {
  /** An off-band manifest (its volatile patterns) instead of `/.cloudlet/manifest`. */
  manifestFile?: string;
}

const METADATA_REPO_PATH = '.cloudlet/metadata';

/** The repository kind of an image directory, or undefined when it has none yet. */
export function detectVcs(dir: string): VcsKind | undefined {
  if (G.isGitRepo(dir)) return 'git';
  if (H.isHgRepo(dir)) return 'hg';
  return undefined;
}

function requireVcs(dir: string): VcsKind {
  const kind = detectVcs(dir);
  if (!kind) {
    throw new CloudletsError('EUSAGE', 'is not versioned yet (no .git or .hg)', {
      where: dir,
      hint: `start with \`cloudlets commit ${dir} -m "first version"\``,
    });
  }
  return kind;
}

const reservedOf = (kind: VcsKind): Reserved => (kind === 'git' ? '.git' : '.hg');

async function volatileTest(dir: string, opts: ImageVcsOptions): Promise<(p: Buffer) => boolean> {
  if (opts.manifestFile === undefined && !existsSync(join(dir, '.cloudlet', 'manifest'))) return () => false;
  // Loaded only here: the manifest validator is a large module that checkout and log never need.
  const [{ loadManifest }, { classify }] = await Promise.all([
    import('../manifest/index.js'),
    import('../stream/filters/select.js'),
  ]);
  const source = openDirectorySource(dir, { xattrs: false, prune: isRepositoryPath });
  const loaded = await loadManifest(source, opts.manifestFile ? { manifestFile: opts.manifestFile } : {});
  const kindOf = classify(loaded.manifest, { where: loaded.where });
  return (p) => kindOf(p) === 'volatile';
}

interface CaptureImageOptions extends ImageVcsOptions {
  mtimes?: boolean;
  onContent?: (imagePath: Buffer, stat: HostStat | undefined) => void;
  /** Extended attributes already being read (started early, beside other work). */
  xattrs?: Promise<TreeXattrs>;
}

/** Extended attributes of the image, without walking the repository (`/.git`, `/.hg`). */
const readImageXattrs = (dir: string): Promise<TreeXattrs> =>
  readTreeXattrs(dir, { prune: isRepositoryPath });

async function captureImage(dir: string, opts: CaptureImageOptions): Promise<Capture> {
  const xattrs = opts.xattrs ?? readImageXattrs(dir);
  // If the walk fails first, the getfattr failure must not surface as an unhandled rejection.
  xattrs.catch(() => {});
  // The walk starts first, on its thread: loading the manifest (for the volatile patterns) overlaps it.
  const source = openDirectorySource(dir, { prune: isRepositoryPath, xattrs: false, hostStat: true });
  source.readAhead?.();
  let cap: Capture;
  try {
    const isVolatile = await volatileTest(dir, opts);
    cap = await captureSource(source, { isVolatile, mtimes: opts.mtimes, onContent: opts.onContent });
  } finally {
    await source.close?.();
  }
  const tree = await xattrs;
  if (tree.size > 0) {
    for (const r of cap.records) {
      const found = tree.get(r.path.toString('latin1'));
      if (found) r.xattrs = new Map(found);
    }
  }
  return cap;
}

/** The metadata file's text at a revision ('' when there is none). */
async function readMetadataTextAt(kind: VcsKind, dir: string, rev: string | undefined): Promise<string> {
  if (!rev) return '';
  const bytes =
    kind === 'git'
      ? await G.gitReadAt(dir, rev, METADATA_REPO_PATH)
      : await H.hgReadAt(dir, rev, METADATA_REPO_PATH);
  return bytes ? bytes.toString('utf8') : '';
}

const whereAt = (rev: string | undefined) => `${METADATA_REPO_PATH} at ${rev?.slice(0, 12)}`;

/**
 * Whether a metadata file records modification times. Exact without parsing: a field starts after a
 * space, and paths, names and base64 values never hold a raw space.
 */
const hasMtimes = (text: string): boolean => /^[^#\n][^\n]* mtime=/m.test(text);

async function readMetadataAt(kind: VcsKind, dir: string, rev: string | undefined): Promise<MetaRecord[]> {
  if (!rev) return [];
  const bytes =
    kind === 'git'
      ? await G.gitReadAt(dir, rev, METADATA_REPO_PATH)
      : await H.hgReadAt(dir, rev, METADATA_REPO_PATH);
  return bytes ? parseMetadata(bytes.toString('utf8'), `${METADATA_REPO_PATH} at ${rev.slice(0, 12)}`) : [];
}

/** HEAD and the metadata file's text there ('' when there is none). */
async function headAndMetadataText(kind: VcsKind, dir: string): Promise<[string | undefined, string]> {
  if (kind === 'git') {
    const { head: rev, bytes } = await G.gitHeadAndFile(dir, METADATA_REPO_PATH);
    return [rev, bytes ? bytes.toString('utf8') : ''];
  }
  const rev = await H.hgHead(dir);
  return [rev, await readMetadataTextAt(kind, dir, rev)];
}

const head = (kind: VcsKind, dir: string) => (kind === 'git' ? G.gitHead(dir) : H.hgHead(dir));

function withTemp<T>(fn: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = mkdtempSync(join(tmpdir(), 'cloudlets-vcs-'));
  // Never throws: a git killed by an interrupt while writing here must not replace the error on its way out.
  return fn(tmp).finally(() => removeWorkDir(tmp));
}

export interface ContentChangeList {
  /** Image paths, escaped like the metadata file (`\x0a` for a newline). */
  added: string[];
  modified: string[];
  deleted: string[];
}

export interface CommitOptions extends ImageVcsOptions {
  message: string;
  /** Repository kind when the image has none yet; default git. */
  vcs?: VcsKind;
  /** Record modification times; default: whatever the last commit did (off for a new repository). */
  mtimes?: boolean;
}

export interface CommitResult {
  vcs: VcsKind;
  /** The repository was created by this commit. */
  created: boolean;
  /** False when nothing changed (no new revision). */
  committed: boolean;
  rev: string | undefined;
  changes: ContentChangeList;
  metadata: MetadataChange[];
  volatile: number;
}

const show = (ps: Buffer[]) => ps.map((p) => formatPath(p));

/** Metadata lines that the content lists do not already say (a new file is a content change). */
function metadataOnly(changes: MetadataChange[]): MetadataChange[] {
  return changes.filter(
    (c) => !((c.kind === 'added' || c.kind === 'removed') && (c.type === 'file' || c.type === 'symlink')),
  );
}

export async function commitImage(dir: string, opts: CommitOptions): Promise<CommitResult> {
  dir = resolve(dir);
  let kind = detectVcs(dir);
  const created = kind === undefined;
  if (!kind) {
    kind = opts.vcs ?? 'git';
    if (kind === 'git') await G.gitInit(dir);
    else await H.hgInit(dir);
  } else if (opts.vcs && opts.vcs !== kind) {
    throw new CloudletsError('EUSAGE', `is versioned with ${kind}, not ${opts.vcs}`, { where: dir });
  }
  mkdirSync(join(dir, '.cloudlet'), { recursive: true, mode: 0o755 });
  // git stages what changed as the walk finds it (startGitStage), beside all the rest.
  const stage = kind === 'git' ? G.startGitStage(dir) : undefined;
  // getfattr starts early too: it walks the tree beside our own walk.
  const xattrs = readImageXattrs(dir);
  xattrs.catch(() => {});
  // So does the capture, before the last commit says whether it recorded modification times: they are
  // captured anyway and dropped below if not.
  const capturing = captureImage(dir, {
    ...opts,
    mtimes: true,
    xattrs,
    ...(stage ? { onContent: (p: Buffer, st: HostStat | undefined) => stage.add(p, st) } : {}),
  });
  capturing.catch(() => {});
  let rev: string | undefined;
  let beforeText: string;
  let cap: Capture;
  try {
    [rev, beforeText] = await headAndMetadataText(kind, dir);
    cap = await capturing;
  } catch (err) {
    stage?.abort();
    await capturing.catch(() => {});
    throw err;
  }
  // Who commits is asked once the walk is done: until then both cores are busy (git hashing, our walk),
  // from now on git's last steps leave one free. A failure only counts if there is a commit to make.
  const idents = stage ? gitIdents(dir) : undefined;
  idents?.catch(() => {});
  const mtimes = opts.mtimes ?? hasMtimes(beforeText);
  if (!mtimes) for (const r of cap.records) r.mtimeNs = undefined;
  const hasChanges = (c: G.ContentChanges) =>
    c.added.length + c.modified.length + c.deleted.length > 0 || c.metadataChanged === true || !rev;
  let metadata: MetadataChange[];
  // The same text as the last commit's (content changed, nothing else) says nothing changed: no parsing.
  const diffWith = (lines: { text: string; sorted: MetaRecord[]; lines: string[] }) =>
    lines.text === beforeText
      ? []
      : metadataOnly(
          diffMetadataText(
            beforeText,
            `${METADATA_REPO_PATH} at ${rev?.slice(0, 12)}`,
            lines.sorted,
            lines.lines,
          ),
        );
  const formatted = formatMetadataLines(cap.records);
  writeFileSync(join(dir, METADATA_REPO_PATH), formatted.text);
  let changes: G.ContentChanges;
  let newRev: string | undefined;
  if (stage) {
    const staged = stage.finish(cap);
    staged.catch(() => {});
    // Compared while git finishes staging.
    metadata = diffWith(formatted);
    await staged;
    changes = await G.gitStagedChanges(dir, rev);
    if (hasChanges(changes)) newRev = await gitCommit(dir, opts.message, rev, changes.staged ?? [], idents);
  } else {
    metadata = diffWith(formatted);
    // Mercurial reads from disk: nested .hg directories wear their escaped names while it does.
    renameNested(dir, cap.records, '.hg', true);
    try {
      changes = await H.hgStage(dir, cap);
      if (hasChanges(changes)) newRev = await H.hgCommit(dir, opts.message);
    } finally {
      renameNested(dir, cap.records, '.hg', false);
    }
  }
  const any = newRev !== undefined;
  return {
    vcs: kind,
    created,
    committed: any,
    rev: newRev ?? rev,
    changes: { added: show(changes.added), modified: show(changes.modified), deleted: show(changes.deleted) },
    metadata,
    volatile: cap.volatile.length,
  };
}

export interface StatusResult {
  vcs: VcsKind;
  rev: string | undefined;
  changes: ContentChangeList;
  metadata: MetadataChange[];
  /** Volatile paths: never committed, never touched by a checkout. */
  ignored: string[];
  clean: boolean;
}

/** What `commit` would record, without changing the repository or the image. */
export async function imageStatus(dir: string, opts: ImageVcsOptions = {}): Promise<StatusResult> {
  dir = resolve(dir);
  const kind = requireVcs(dir);
  const rev = await head(kind, dir);
  const before = await readMetadataAt(kind, dir, rev);
  const cap = await captureImage(dir, { ...opts, mtimes: before.some((r) => r.mtimeNs !== undefined) });
  const text = formatMetadata(cap.records);
  const changes =
    kind === 'git'
      ? await withTemp(async (tmp) => {
          const idx = G.scratchIndex(dir, tmp);
          await G.gitStage(dir, cap, text, { indexFile: idx });
          return G.gitStagedChanges(dir, rev, idx);
        })
      : await (async () => {
          renameNested(dir, cap.records, '.hg', true);
          try {
            return await H.hgChanges(dir, cap);
          } finally {
            renameNested(dir, cap.records, '.hg', false);
          }
        })();
  const metadata = metadataOnly(diffMetadata(before, cap.records));
  const list = {
    added: show(changes.added),
    modified: show(changes.modified),
    deleted: show(changes.deleted),
  };
  const clean = list.added.length + list.modified.length + list.deleted.length + metadata.length === 0;
  return { vcs: kind, rev, changes: list, metadata, ignored: show(cap.volatile), clean };
}

export async function imageLog(dir: string, opts: { max?: number } = {}): Promise<G.LogEntry[]> {
  dir = resolve(dir);
  const kind = requireVcs(dir);
  return kind === 'git' ? G.gitLog(dir, opts.max) : H.hgLog(dir, opts.max);
}

export interface DiffOptions extends ImageVcsOptions {
  /** Default HEAD. */
  from?: string;
  /** Default: the image directory as it is now. */
  to?: string;
}

export interface DiffResult {
  vcs: VcsKind;
  from: string;
  to: string;
  /** Unified diff of file content, as the VCS prints it (bytes: names and content may be any bytes). */
  content: Buffer;
  metadata: MetadataChange[];
}

export async function imageDiff(dir: string, opts: DiffOptions = {}): Promise<DiffResult> {
  dir = resolve(dir);
  const kind = requireVcs(dir);
  const fromRev = opts.from ?? (await head(kind, dir));
  if (!fromRev) throw new CloudletsError('EUSAGE', 'has no commit to compare with yet', { where: dir });
  const from = kind === 'git' ? await G.gitResolve(dir, fromRev) : await H.hgResolve(dir, fromRev);
  const before = await readMetadataAt(kind, dir, from);
  if (opts.to !== undefined) {
    const to = kind === 'git' ? await G.gitResolve(dir, opts.to) : await H.hgResolve(dir, opts.to);
    const after = await readMetadataAt(kind, dir, to);
    const content = kind === 'git' ? await G.gitDiff(dir, from, to) : await H.hgDiff(dir, from, to);
    return { vcs: kind, from, to, content, metadata: metadataOnly(diffMetadata(before, after)) };
  }
  const cap = await captureImage(dir, { ...opts, mtimes: before.some((r) => r.mtimeNs !== undefined) });
  const content =
    kind === 'git'
      ? await withTemp(async (tmp) => {
          const idx = G.scratchIndex(dir, tmp);
          await G.gitStage(dir, cap, formatMetadata(cap.records), { indexFile: idx });
          return G.gitDiff(dir, from, undefined, idx);
        })
      : await H.hgDiff(dir, from, undefined);
  return {
    vcs: kind,
    from,
    to: 'working tree',
    content,
    metadata: metadataOnly(diffMetadata(before, cap.records)),
  };
}

// --- checkout, clone, pull: the VCS writes content, then the metadata file is applied ---

export interface RestoreOptions {
  /** Devices, setuid/setgid bits and security.capability from the repository (root only). */
  trust?: boolean;
}

export interface CheckoutResult {
  vcs: VcsKind;
  rev: string;
  restore: RestoreResult;
}

/** Renames nested repositories between their real names and the escaped names the VCS stores. */
function renameNested(
  dir: string,
  records: readonly MetaRecord[],
  reserved: Reserved,
  toEscaped: boolean,
): void {
  const paths = escapedDirs(
    records.map((r) => r.path),
    reserved,
  );
  const ordered = toEscaped ? paths : [...paths].reverse();
  const root = Buffer.from(dir);
  for (const p of ordered) {
    const real = Buffer.concat([root, partlyEscaped(p, reserved, false)]);
    const esc = Buffer.concat([root, partlyEscaped(p, reserved, true)]);
    const [from, to] = toEscaped ? [real, esc] : [esc, real];
    // The names come from a metadata file: never follow a symlinked parent out of the image.
    try {
      assertRealParents(dir, partlyEscaped(p, reserved, true));
    } catch (err) {
      if (err instanceof CloudletsError && err.message.endsWith('is missing')) continue;
      throw err;
    }
    if (!exists(from)) continue;
    if (exists(to)) {
      throw new CloudletsError(
        'EPATH',
        `both ${formatPath(Buffer.from(p, 'latin1'))} and its escaped name exist`,
        {
          where: dir,
          hint: 'move one of them away, then run the command again',
        },
      );
    }
    renameSync(from, to);
  }
}

function exists(p: Buffer): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function validateAll(dir: string, records: readonly MetaRecord[], checked?: ReadonlySet<MetaRecord>): void {
  const where = join(dir, METADATA_REPO_PATH);
  for (const r of records) {
    if (checked?.has(r)) continue;
    assertImagePath(r.path, where);
    if (r.link) assertImagePath(r.link, where);
  }
}

/** What a checkout can learn about its target before the VCS switches (read while it switches). */
interface Prepared {
  rev: string;
  /** The target's metadata, parsed and validated. */
  after: MetaRecord[];
  /** Content paths that differ between the old and the target revision. */
  changed: Promise<Set<string>> | undefined;
  /** Records of `after` whose line the old metadata file has too: nothing about them changed. */
  unchanged: ReadonlySet<MetaRecord>;
  /** Records of the old metadata whose line the new one lacks (what may be stale). */
  gone: MetaRecord[];
}

/** After the VCS updated the tree from `before` to the current revision: nested repos, stale nodes, metadata. */
async function settle(
  kind: VcsKind,
  dir: string,
  before: MetaRecord[],
  oldRev: string | undefined,
  opts: RestoreOptions,
  prepared?: Prepared,
  /** The VCS was told the exact revision `prepared` is for: HEAD is known to be there. */
  exact = false,
): Promise<{ rev: string; restore: RestoreResult }> {
  const rev = exact && prepared ? prepared.rev : (await head(kind, dir))!;
  // Prepared for another revision (the name moved meanwhile): read again.
  const ready = prepared?.rev === rev ? prepared : undefined;
  const after = ready ? ready.after : await readMetadataAt(kind, dir, rev);
  if (!ready) validateAll(dir, after);
  renameNested(dir, after, reservedOf(kind), false);
  // A record both files hold is still wanted: only the others can be stale.
  removeStale(dir, ready ? ready.gone : before, after);
  let only: ((r: MetaRecord) => boolean) | undefined;
  if (oldRev) {
    // Only what the switch touched: changed metadata, content the VCS rewrote, and what it may have
    // made or removed (directories, special files). Files it left alone keep their state.
    const changed = (await ready?.changed) ?? (await changedPaths(kind, dir, oldRev, rev));
    const touched = (r: MetaRecord): boolean => {
      if (changed.has(r.path.toString('latin1'))) return true;
      if (r.type === 'hardlink') return changed.has(r.link!.toString('latin1'));
      return r.type !== 'file' && r.type !== 'symlink';
    };
    if (ready) {
      only = (r) => !ready.unchanged.has(r) || touched(r);
    } else {
      const old = new Map(before.map((r) => [r.path.toString('latin1'), r]));
      only = (r) => {
        const o = old.get(r.path.toString('latin1'));
        return !o || !sameRecord(o, r) || touched(r);
      };
    }
  }
  // Extended attributes to remove can only be on records whose line changed.
  const previous = ready ? ready.gone : before;
  const restore = await restoreMetadata(dir, after, { trust: opts.trust, previous, only });
  return { rev, restore };
}

const changedPaths = (kind: VcsKind, dir: string, from: string, to: string): Promise<Set<string>> =>
  kind === 'git' ? G.gitChangedPaths(dir, from, to) : H.hgChangedPaths(dir, from, to);

/** Runs a VCS operation that rewrites the tree with nested repositories under their escaped names. */
async function withNestedEscaped<T>(
  kind: VcsKind,
  dir: string,
  before: MetaRecord[],
  fn: () => Promise<T>,
): Promise<T> {
  validateAll(dir, before);
  renameNested(dir, before, reservedOf(kind), true);
  try {
    return await fn();
  } catch (err) {
    renameNested(dir, before, reservedOf(kind), false);
    throw err;
  }
}

/**
 * Whether a metadata file may list a nested repository (a path with a `.git` or `.hg` component), which
 * must be renamed before the VCS switches. A quick superset test on the text: paths are written with
 * `.`, letters and `/` as they are.
 */
const mayListNested = (text: string, kind: VcsKind): boolean =>
  (kind === 'git' ? /\/\.git/i : /\/\.hg/i).test(text);

export async function checkoutImage(
  dir: string,
  rev: string,
  opts: RestoreOptions = {},
): Promise<CheckoutResult> {
  dir = resolve(dir);
  const kind = requireVcs(dir);
  const { oldRev, target, beforeText, afterText } =
    kind === 'git'
      ? await G.gitCheckoutTargets(dir, rev, METADATA_REPO_PATH)
      : await hgCheckoutTargets(dir, rev);
  const changed = oldRev ? changedPaths(kind, dir, oldRev, target) : undefined;
  changed?.catch(() => {});
  // Lines both revisions share are parsed (and checked) once.
  const byLine = new Map<string, MetaRecord>();
  let before: MetaRecord[] = [];
  const readBefore = () => {
    before = oldRev && beforeText ? parseMetadata(beforeText, whereAt(oldRev), { byLine }) : [];
    validateAll(dir, before);
  };
  // Nested repositories take their escaped names before the switch, so the old file is read first then.
  // Otherwise the VCS starts at once and both files are read while it works; the old one is still
  // checked before anything of ours touches the tree.
  const nested = mayListNested(beforeText, kind);
  if (nested) readBefore();
  let prepared: Prepared | undefined;
  const switchTree = async () => {
    const switching =
      kind === 'git'
        ? G.git(dir, ['checkout', '-q', rev === target ? target : rev, '--'])
        : H.hg(dir, ['update', '--check', '-r', target]);
    switching.catch(() => {});
    let failed: unknown;
    try {
      if (!nested) readBefore();
    } catch (err) {
      failed = err;
    }
    if (failed === undefined) {
      try {
        const unchanged = new Set<MetaRecord>();
        let after: MetaRecord[];
        if (afterText === beforeText && oldRev) {
          after = before;
          for (const r of before) unchanged.add(r);
        } else {
          after = afterText
            ? parseMetadata(afterText, whereAt(target), { reuse: byLine, reused: unchanged })
            : [];
        }
        validateAll(dir, after, unchanged);
        prepared = { rev: target, after, changed, unchanged, gone: before.filter((r) => !unchanged.has(r)) };
      } catch {
        // Not prepared: settle reads it again and reports the problem, after the switch, as before.
      }
    }
    await switching;
    if (failed !== undefined) throw failed;
  };
  if (nested) await withNestedEscaped(kind, dir, before, switchTree);
  else await switchTree();
  const done = await settle(kind, dir, before, oldRev, opts, prepared, rev === target);
  return { vcs: kind, ...done };
}

async function hgCheckoutTargets(dir: string, rev: string): Promise<G.CheckoutTargets> {
  const [oldRev, target] = await Promise.all([H.hgHead(dir), H.hgResolve(dir, rev)]);
  const [beforeText, afterText] = await Promise.all([
    readMetadataTextAt('hg', dir, oldRev),
    readMetadataTextAt('hg', dir, target),
  ]);
  return { oldRev, target, beforeText, afterText };
}

export interface CloneOptions extends RestoreOptions {
  /** Default: hg when URL is a local directory holding `.hg`, else git. */
  vcs?: VcsKind;
}

export async function cloneImage(url: string, dir: string, opts: CloneOptions = {}): Promise<CheckoutResult> {
  dir = resolve(dir);
  if (existsSync(dir) && !(lstatSync(dir).isDirectory() && readdirSync(dir).length === 0)) {
    throw new CloudletsError('EEXIST', 'already exists and is not an empty directory', { where: dir });
  }
  const kind = opts.vcs ?? (existsSync(join(url, '.hg')) ? 'hg' : 'git');
  if (kind === 'git') {
    await G.git(tmpdir(), ['clone', '-q', '--no-checkout', '--', url, dir]);
    await G.configureGitRepo(dir);
    if (!(await G.gitHead(dir)))
      throw new CloudletsError('ESOURCE', 'the repository has no commits', { where: url });
    await G.git(dir, ['reset', '-q', '--hard', 'HEAD']);
  } else {
    await H.hg(tmpdir(), ['clone', '-q', '-U', '--', url, dir]);
    if (!(await H.hgHead(dir, 'tip')))
      throw new CloudletsError('ESOURCE', 'the repository has no commits', { where: url });
    await H.hg(dir, ['update', '-q']);
  }
  const done = await settle(kind, dir, [], undefined, opts);
  return { vcs: kind, ...done };
}

export async function pushImage(dir: string, dest?: string): Promise<void> {
  dir = resolve(dir);
  const kind = requireVcs(dir);
  // With a destination, the current branch goes to the branch of the same name there.
  if (kind === 'git') await G.git(dir, ['push', '-q', ...(dest ? ['--', dest, 'HEAD'] : [])]);
  else await H.hg(dir, ['push', ...(dest ? ['--', dest] : [])], { okCodes: [0, 1] });
}

export interface PullResult extends CheckoutResult {
  /** A merge commit was made. */
  merged: boolean;
  /** Paths both sides gave different metadata: the local version was kept. */
  metadataConflicts: string[];
}

/** Pulls, merges (a merge commit when histories diverged) and applies the merged metadata. */
export async function pullImage(
  dir: string,
  src: string | undefined,
  opts: RestoreOptions = {},
): Promise<PullResult> {
  dir = resolve(dir);
  const kind = requireVcs(dir);
  const oldRev = await head(kind, dir);
  const before = await readMetadataAt(kind, dir, oldRev);
  let merged = false;
  let conflicts: string[] = [];
  await withNestedEscaped(kind, dir, before, async () => {
    if (kind === 'git') {
      const unmerged = await G.gitPull(dir, src);
      if (unmerged.length > 0) conflicts = await resolveGitMerge(dir, unmerged);
    } else {
      const res = await H.hgPull(dir, src);
      merged = res.merged;
      conflicts = res.conflicts.map(formatPath);
    }
  });
  if (kind === 'git') merged = await G.isMergeCommit(dir);
  const done = await settle(kind, dir, before, oldRev, opts);
  return { vcs: kind, merged, metadataConflicts: conflicts, ...done };
}

/**
 * Finishes a pull whose merge stopped on the metadata file: merged path by path (neighbouring lines are
 * no conflict), then committed. Conflicts in content are left to the user.
 */
async function resolveGitMerge(dir: string, unmerged: Buffer[]): Promise<string[]> {
  const others = unmerged.filter((p) => p.toString() !== METADATA_REPO_PATH);
  const parse = async (n: 1 | 2 | 3) =>
    parseMetadata(
      (await G.gitConflictStage(dir, n, METADATA_REPO_PATH)).toString('utf8'),
      `${METADATA_REPO_PATH} (merge stage ${n})`,
    );
  let conflicts: Buffer[] = [];
  if (others.length < unmerged.length) {
    const merge = mergeMetadata(await parse(1), await parse(2), await parse(3));
    conflicts = merge.conflicts;
    writeFileSync(join(dir, METADATA_REPO_PATH), formatMetadata(merge.records));
  }
  if (others.length > 0) {
    throw new CloudletsError(
      'EEXTERNAL',
      `the merge has conflicts in ${others.map((p) => formatPath(fromRepoPath(p, '.git'))).join(', ')}`,
      {
        where: dir,
        hint: `resolve them (cloudlets git ${dir} status), then run cloudlets commit`,
      },
    );
  }
  await G.gitFinishMerge(dir, METADATA_REPO_PATH);
  return conflicts.map(formatPath);
}

/** Runs git or hg itself in the image directory with the terminal attached; returns its exit code. */
export async function passthrough(dir: string, kind: VcsKind, args: readonly string[]): Promise<number> {
  dir = resolve(dir);
  const res =
    kind === 'git'
      ? await G.git(dir, args, { inherit: true, okCodes: Array.from({ length: 256 }, (_, i) => i) })
      : await H.hg(dir, args, { inherit: true, okCodes: Array.from({ length: 256 }, (_, i) => i) });
  return res.code;
}
