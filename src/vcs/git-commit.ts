// Making the commit once the index is staged. `git fast-import` writes the trees and the commit into one
// pack: `write-tree` would create one loose file per changed directory, and creating files is what a
// commit of a large image spends its time on. The branch moves with `update-ref`, as `git commit` would.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { git, identityEnv, type StagedEntry } from './git.js';

export interface Idents {
  /** `Name <email> SECONDS ZONE`, as commit-tree would write it (environment and configuration applied). */
  author: string;
  committer: string;
}

/** Author and committer of a commit made now; strict like commit-tree (an unusable identity fails). */
export async function gitIdents(dir: string): Promise<Idents> {
  const env = await identityEnv(dir);
  const [author, committer] = await Promise.all(
    ['GIT_AUTHOR_IDENT', 'GIT_COMMITTER_IDENT'].map(async (v) =>
      (await git(dir, ['var', v], { env })).stdout.toString().trim(),
    ),
  );
  return { author: author!, committer: committer! };
}

/** Where fast-import builds the commit; deleted in the transaction that moves HEAD. */
const WORK_REF = 'refs/cloudlets/commit';

/** A path for a fast-import command: C-quoted, so that any byte but NUL survives. */
export function fastImportPath(p: Buffer): Buffer {
  let plain = p[0] !== 0x22;
  for (let i = 0; plain && i < p.length; i++) plain = p[i]! >= 0x20 && p[i] !== 0x7f;
  if (plain) return p;
  let out = '"';
  for (const c of p) {
    if (c === 0x22 || c === 0x5c) out += `\\${String.fromCharCode(c)}`;
    else if (c < 0x20 || c === 0x7f) out += `\\${c.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(c);
  }
  return Buffer.from(`${out}"`, 'latin1');
}

/** The fast-import stream: one commit of `staged` on top of `parent`, then its id on standard output. */
export function fastImportStream(
  message: string,
  idents: Idents,
  parent: string | undefined,
  staged: readonly StagedEntry[],
): Buffer {
  const msg = Buffer.from(message.endsWith('\n') ? message : `${message}\n`, 'utf8');
  const parts: Buffer[] = [
    Buffer.from(
      `reset ${WORK_REF}\ncommit ${WORK_REF}\nmark :1\nauthor ${idents.author}\ncommitter ${idents.committer}\ndata ${msg.length}\n`,
    ),
    msg,
    Buffer.from(parent ? `\nfrom ${parent}\n` : '\n'),
  ];
  // One latin1 string for the file commands (a char per byte: any path survives), not three buffers each.
  let files = '';
  for (const e of staged) {
    const cmd = /^0+$/.test(e.mode) ? 'D ' : `M ${e.mode} ${e.sha} `;
    files += `${cmd}${fastImportPath(e.path).toString('latin1')}\n`;
  }
  parts.push(Buffer.from(`${files}\nget-mark :1\ndone\n`, 'latin1'));
  return Buffer.concat(parts);
}

/**
 * Commits what `gitStagedChanges` found staged against `parent` (every entry of the index for a first
 * commit). No hooks, and no second pass over the working tree, which `git commit` would make.
 */
export async function gitCommit(
  dir: string,
  message: string,
  parent: string | undefined,
  staged: readonly StagedEntry[],
  /** Started early by the caller: they do not depend on the staging. */
  idents: Promise<Idents> = gitIdents(dir),
): Promise<string> {
  const input = fastImportStream(message, await idents, parent, staged);
  // Trees are mostly object ids, which zlib cannot shrink: its fastest level gives a pack as small (0.3%
  // larger, measured) in three quarters of the time.
  const out = await git(dir, ['fast-import', '--quiet', '--done', '--force'], {
    input,
    config: ['pack.compression=1'],
  });
  const commit = out.stdout.toString().trim();
  const subject = message.split('\n')[0] ?? '';
  // With the old value given, HEAD does not move if it moved meanwhile.
  const NUL = '\0';
  await git(dir, ['update-ref', '-m', `commit${parent ? '' : ' (initial)'}: ${subject}`, '--stdin', '-z'], {
    input: `update HEAD${NUL}${commit}${NUL}${parent ?? ''}${NUL}delete ${WORK_REF}${NUL}${NUL}`,
  });
  await gitRollUpPacks(dir);
  return commit;
}

/** More packs than this and a commit rolls the small ones up (each lookup of a new object scans them all). */
const MAX_PACKS = 16;

/**
 * What `git gc --auto` would do after a commit (gc.auto is off: no background process outlives a
 * command), kept cheap: a geometric repack merges the small packs (and loose objects) and leaves the large
 * ones alone, without a delta search.
 */
async function gitRollUpPacks(dir: string): Promise<void> {
  let packs: number;
  try {
    packs = readdirSync(join(dir, '.git', 'objects', 'pack')).filter((n) => n.endsWith('.pack')).length;
  } catch {
    return;
  }
  if (packs <= MAX_PACKS) return;
  // Housekeeping only: the commit is made, and a git too old for --geometric keeps its packs. Small
  // mapping windows: copying a large pack would otherwise map all of it (RSS the size of the image).
  await git(dir, ['repack', '-d', '-q', '--geometric=2'], {
    config: ['pack.window=0', 'core.packedGitLimit=32m', 'core.packedGitWindowSize=8m'],
  }).catch(() => {});
}
