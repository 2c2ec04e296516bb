// The Mercurial wrapper and the hg side of versioning. File lists go through `listfile0:` files (NUL
// separated bytes), never as arguments, so any name hg can store survives.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudletsError } from '../errors.js';
import { removeWorkDir } from '../util/scratch-dir.js';
import type { Capture } from './capture.js';
import type { ContentChanges, LogEntry } from './git.js';
import { vcsEnv } from './git.js';
import { formatMetadata, mergeMetadata, parseMetadata, showPath } from './metadata.js';
import { fromRepoPath, toRepoPath } from './repo-path.js';
import { type RunResult, runProgram } from './run.js';

export interface HgOptions {
  input?: Buffer | string;
  okCodes?: number[];
  inherit?: boolean;
  config?: string[];
}

export function hg(dir: string, args: readonly string[], opts: HgOptions = {}): Promise<RunResult> {
  // Merge backups go inside .hg, not into the image as stray .orig files.
  const config = [
    'ui.merge=internal:merge',
    'ui.interactive=false',
    'ui.origbackuppath=.hg/origbackups',
    ...(opts.config ?? []),
  ].flatMap((c) => ['--config', c]);
  return runProgram('hg', [...config, '--cwd', dir, ...args], {
    cwd: dir,
    env: vcsEnv(),
    input: opts.input,
    okCodes: opts.okCodes,
    inherit: opts.inherit,
    display: `hg ${args.join(' ')}`,
  });
}

export function isHgRepo(dir: string): boolean {
  return existsSync(join(dir, '.hg'));
}

export async function hgInit(dir: string): Promise<void> {
  await hg(dir, ['init', '.']);
}

async function identity(dir: string): Promise<string[]> {
  if (process.env.HGUSER) return [];
  const r = await hg(dir, ['config', 'ui.username'], { okCodes: [0, 1] });
  return r.stdout.toString().trim() ? [] : ['ui.username=cloudlets <cloudlets@localhost>'];
}

const NULL_NODE = /^0{40}$/;

/** The node of `rev` (default the working directory's parent), undefined for the empty repository. */
export async function hgHead(dir: string, rev = '.'): Promise<string | undefined> {
  const r = await hg(dir, ['log', '-r', rev, '-T', '{node}'], { okCodes: [0, 255] });
  const node = r.stdout.toString().trim();
  return r.code === 0 && node && !NULL_NODE.test(node) ? node : undefined;
}

export async function hgResolve(dir: string, rev: string): Promise<string> {
  const node = await hgHead(dir, rev);
  if (!node)
    throw new CloudletsError('EUSAGE', `unknown revision "${rev}"`, {
      where: dir,
      hint: 'see `cloudlets log IMAGE`',
    });
  return node;
}

export async function hgReadAt(dir: string, rev: string, repoPath: string): Promise<Buffer | undefined> {
  const r = await hg(dir, ['cat', '-r', rev, `path:${repoPath}`], { okCodes: [0, 1] });
  return r.code === 0 ? r.stdout : undefined;
}

function withListFile<T>(paths: Buffer[], fn: (arg: string) => Promise<T>): Promise<T> {
  const tmp = mkdtempSync(join(tmpdir(), 'cloudlets-hg-'));
  const file = join(tmp, 'list');
  writeFileSync(file, Buffer.concat(paths.flatMap((p) => [p, Buffer.from([0])])));
  // Never throws: a failure to remove must not replace the error on its way out.
  return fn(`listfile0:${file}`).finally(() => removeWorkDir(tmp));
}

function splitStatus(out: Buffer): [string, Buffer][] {
  const res: [string, Buffer][] = [];
  let start = 0;
  for (let i = out.indexOf(0); i !== -1; i = out.indexOf(0, start)) {
    const rec = out.subarray(start, i);
    res.push([String.fromCharCode(rec[0]!), rec.subarray(2)]);
    start = i + 1;
  }
  return res;
}

/** Mercurial cannot store names holding a newline or carriage return: say which, before touching anything. */
function checkNames(cap: Capture): void {
  const bad = cap.content.filter((p) => p.includes(0x0a) || p.includes(0x0d));
  if (bad.length > 0) {
    throw new CloudletsError(
      'ENOTSUP',
      `Mercurial cannot store file names with a newline or carriage return: ${bad.slice(0, 5).map(showPath).join(', ')}${bad.length > 5 ? ` and ${bad.length - 5} more` : ''}`,
      {
        hint: 'rename them, mark them volatile in the manifest, or version the image with git (--vcs git)',
      },
    );
  }
}

/**
 * Brings the set of tracked files to exactly the captured content plus the metadata file (`hg add` and
 * `hg forget` with explicit lists), or with `dryRun` only computes what that would change.
 */
export async function hgStage(dir: string, cap: Capture, dryRun = false): Promise<ContentChanges> {
  checkNames(cap);
  const want = new Map<string, Buffer>();
  for (const p of cap.content) {
    const rp = toRepoPath(p, '.hg');
    want.set(rp.toString('latin1'), rp);
  }
  want.set('.cloudlet/metadata', Buffer.from('.cloudlet/metadata'));
  const status = splitStatus((await hg(dir, ['status', '-0', '-mardc'])).stdout);
  const tracked = new Map<string, string>();
  for (const [st, p] of status) tracked.set(p.toString('latin1'), st);
  const toAdd: Buffer[] = [];
  for (const [k, p] of want) {
    const st = tracked.get(k);
    if (st === undefined || st === 'R') toAdd.push(p);
  }
  const toForget: Buffer[] = [];
  for (const [k, st] of tracked) if (st !== 'R' && !want.has(k)) toForget.push(Buffer.from(k, 'latin1'));
  const img = (l: Buffer[]) =>
    l.filter((p) => p.toString() !== '.cloudlet/metadata').map((p) => fromRepoPath(p, '.hg'));
  if (dryRun) {
    const modified: Buffer[] = [];
    const added: Buffer[] = [...toAdd];
    const deleted: Buffer[] = [...toForget];
    for (const [st, p] of status) {
      if (!want.has(p.toString('latin1'))) continue;
      if (st === 'M') modified.push(p);
      else if (st === 'A') added.push(p);
    }
    return { added: img(added), modified: img(modified), deleted: img(deleted) };
  }
  if (toAdd.length > 0) await withListFile(toAdd, (l) => hg(dir, ['add', '-q', l]));
  if (toForget.length > 0) await withListFile(toForget, (l) => hg(dir, ['forget', '-q', l]));
  const after = splitStatus((await hg(dir, ['status', '-0', '-mar'])).stdout);
  const res: ContentChanges = { added: [], modified: [], deleted: [] };
  for (const [st, p] of after) (st === 'A' ? res.added : st === 'R' ? res.deleted : res.modified).push(p);
  const metadataChanged = after.some(([, p]) => p.toString() === '.cloudlet/metadata');
  return { added: img(res.added), modified: img(res.modified), deleted: img(res.deleted), metadataChanged };
}

export function hgChanges(dir: string, cap: Capture): Promise<ContentChanges> {
  return hgStage(dir, cap, true);
}

export async function hgCommit(dir: string, message: string): Promise<string> {
  await hg(dir, ['commit', '-q', '-l', '-'], {
    input: message || '(no message)',
    config: await identity(dir),
  });
  return (await hgHead(dir))!;
}

export async function hgLog(dir: string, max?: number): Promise<LogEntry[]> {
  const args = ['log', '-T', 'json'];
  if (max !== undefined) args.push('-l', String(max));
  const list = JSON.parse((await hg(dir, args)).stdout.toString('utf8') || '[]') as {
    node: string;
    user: string;
    date: [number, number];
    desc: string;
  }[];
  return list.map((c) => ({
    rev: c.node,
    author: c.user,
    date: new Date((c.date[0] - c.date[1]) * 1000).toISOString().replace('.000Z', 'Z'),
    subject: c.desc.split('\n')[0] ?? '',
  }));
}

export async function hgDiff(dir: string, from: string, to: string | undefined): Promise<Buffer> {
  const revs = to === undefined ? ['-r', from] : ['-r', from, '-r', to];
  return (await hg(dir, ['diff', '--git', ...revs, '-X', 'path:.cloudlet/metadata'])).stdout;
}

/**
 * Pulls; merges and commits when histories diverged (the metadata file merged path by path), else
 * updates. Returns whether it merged, and the paths whose metadata both sides changed (ours kept).
 */
export async function hgPull(
  dir: string,
  src: string | undefined,
): Promise<{ merged: boolean; conflicts: Buffer[] }> {
  await hg(dir, ['pull', '-q', ...(src ? ['--', src] : [])]);
  const heads = (await hg(dir, ['heads', '-T', '{node}\n', '.'], { okCodes: [0, 1] })).stdout
    .toString()
    .trim()
    .split('\n')
    .filter(Boolean);
  if (heads.length <= 1) {
    await hg(dir, ['update', '-q', '--check']);
    return { merged: false, conflicts: [] };
  }
  let conflicts: Buffer[] = [];
  const res = await hg(dir, ['merge', '-q'], { okCodes: [0, 1] });
  if (res.code === 1) {
    const listed = JSON.parse(
      (await hg(dir, ['resolve', '--list', '-T', 'json'])).stdout.toString('utf8') || '[]',
    ) as {
      mergestatus: string;
      path: string;
    }[];
    const unresolved = listed
      .filter((e) => e.mergestatus === 'U' || e.mergestatus === 'unresolved')
      .map((e) => e.path);
    if (unresolved.includes('.cloudlet/metadata')) {
      const at = async (rev: string) =>
        parseMetadata(
          ((await hgReadAt(dir, rev, '.cloudlet/metadata')) ?? Buffer.alloc(0)).toString('utf8'),
          `.cloudlet/metadata at ${rev}`,
        );
      const m = mergeMetadata(await at('ancestor(p1(),p2())'), await at('p1()'), await at('p2()'));
      conflicts = m.conflicts;
      writeFileSync(join(dir, '.cloudlet/metadata'), formatMetadata(m.records));
      await hg(dir, ['resolve', '-q', '-m', 'path:.cloudlet/metadata']);
    }
    const others = unresolved.filter((p) => p !== '.cloudlet/metadata');
    if (others.length > 0) {
      throw new CloudletsError('EEXTERNAL', `the merge has conflicts in ${others.join(', ')}`, {
        where: dir,
        hint: `resolve them (cloudlets hg ${dir} resolve --list), then run cloudlets commit`,
      });
    }
  }
  await hg(dir, ['commit', '-q', '-m', 'merge'], { config: await identity(dir) });
  return { merged: true, conflicts };
}

/** Image paths (latin1 keys) whose content differs between two revisions. */
export async function hgChangedPaths(dir: string, from: string, to: string): Promise<Set<string>> {
  const out = (await hg(dir, ['status', '--rev', from, '--rev', to, '-0', '-n', '-mar'])).stdout;
  const keys = new Set<string>();
  let start = 0;
  for (let i = out.indexOf(0); i !== -1; i = out.indexOf(0, start)) {
    keys.add(fromRepoPath(out.subarray(start, i), '.hg').toString('latin1'));
    start = i + 1;
  }
  return keys;
}
