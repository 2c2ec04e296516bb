// `IMAGE@REV`: a past version read straight from the repository, never checked out. Content comes from
// one long-running `git cat-file --batch`; owners, modes, devices, links and xattrs from the metadata file
// of that revision.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { CloudletsError } from '../errors.js';
import type { Entry, EntryType, ImageSource } from '../stream/entry.js';
import { git, gitReadAt, gitResolve, isGitRepo, vcsEnv } from './git.js';
import { METADATA_PATH, type MetaRecord, parseMetadata, showPath } from './metadata.js';
import { fromRepoPath } from './repo-path.js';

interface TreeItem {
  mode: string;
  sha: string;
  size: number;
}

/** Serves blobs one at a time from `git cat-file --batch` (requests are queued: one reader at a time). */
class BlobReader {
  private child: ChildProcessWithoutNullStreams | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private failed: Error | undefined;

  constructor(private readonly dir: string) {}

  private start(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn('git', ['-c', `safe.directory=${this.dir}`, '-C', this.dir, 'cat-file', '--batch'], {
      env: vcsEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.waiting?.();
    });
    const fail = (e: Error) => {
      this.failed = e;
      this.waiting?.();
    };
    child.on('error', fail);
    child.on('close', () => fail(new Error('git cat-file exited')));
    child.stdin.on('error', () => {});
    this.child = child;
    return child;
  }

  private async need(n: number): Promise<void> {
    while (this.buf.length < n) {
      if (this.failed)
        throw new CloudletsError('EEXTERNAL', `git cat-file: ${this.failed.message}`, { where: this.dir });
      await new Promise<void>((r) => {
        this.waiting = r;
      });
      this.waiting = undefined;
    }
  }

  read(sha: string): Promise<Buffer> {
    const job = this.chain.then(async () => {
      this.start().stdin.write(`${sha}\n`);
      let nl = this.buf.indexOf(0x0a);
      while (nl === -1) {
        await this.need(this.buf.length + 1);
        nl = this.buf.indexOf(0x0a);
      }
      const header = this.buf.subarray(0, nl).toString();
      const m = /^[0-9a-f]+ \w+ (\d+)$/.exec(header);
      if (!m) throw new CloudletsError('EEXTERNAL', `git cat-file: ${header}`, { where: this.dir });
      const size = Number(m[1]);
      await this.need(nl + 1 + size + 1);
      const data = Buffer.from(this.buf.subarray(nl + 1, nl + 1 + size));
      this.buf = this.buf.subarray(nl + 1 + size + 1);
      return data;
    });
    this.chain = job.catch(() => {});
    return job;
  }

  close(): void {
    this.child?.stdin.end();
    this.child?.kill();
    this.child = undefined;
  }
}

async function listTree(dir: string, rev: string): Promise<Map<string, TreeItem>> {
  const out = (await git(dir, ['ls-tree', '-r', '-l', '-z', '--full-tree', rev])).stdout;
  const items = new Map<string, TreeItem>();
  let start = 0;
  for (let i = out.indexOf(0); i !== -1; i = out.indexOf(0, start)) {
    const rec = out.subarray(start, i);
    start = i + 1;
    const tab = rec.indexOf(0x09);
    const [mode = '', , sha = '', size = '0'] = rec.subarray(0, tab).toString().trim().split(/\s+/);
    if (mode === '160000') continue; // a gitlink has no content here
    items.set(fromRepoPath(rec.subarray(tab + 1), '.git').toString('latin1'), {
      mode,
      sha,
      size: Number(size) || 0,
    });
  }
  return items;
}

/** Records for a revision committed without a metadata file (plain git): git's modes, root owner, directories implied. */
function recordsFromTree(tree: Map<string, TreeItem>): MetaRecord[] {
  const recs = new Map<string, MetaRecord>();
  const dir = (p: string): MetaRecord => ({
    path: Buffer.from(p, 'latin1'),
    type: 'dir',
    uid: 0,
    gid: 0,
    mode: 0o755,
    xattrs: new Map(),
  });
  recs.set('/', dir('/'));
  for (const [p, item] of tree) {
    for (let i = p.indexOf('/', 1); i !== -1; i = p.indexOf('/', i + 1))
      if (!recs.has(p.slice(0, i))) recs.set(p.slice(0, i), dir(p.slice(0, i)));
    const type: EntryType = item.mode === '120000' ? 'symlink' : 'file';
    const mode = item.mode === '120000' ? 0o777 : item.mode === '100755' ? 0o755 : 0o644;
    recs.set(p, { path: Buffer.from(p, 'latin1'), type, uid: 0, gid: 0, mode, xattrs: new Map() });
  }
  return [...recs.values()];
}

export interface RevisionSourceOptions {
  /** Modification time of entries the metadata file gives none: default the commit's time. */
  mtimeNs?: bigint;
}

/**
 * An ImageSource for revision `rev` of the repository in image directory `dir` (git). Entries come
 * sorted from the revision's metadata file; file content is read lazily, one blob at a time.
 */
export async function openRevisionSource(
  dir: string,
  rev: string,
  opts: RevisionSourceOptions = {},
): Promise<ImageSource> {
  dir = resolve(dir);
  if (!isGitRepo(dir)) {
    throw new CloudletsError('ENOTSUP', 'reading a revision needs a git repository in the image directory', {
      where: dir,
      hint: 'for Mercurial, check the revision out with `cloudlets checkout`',
    });
  }
  const commit = await gitResolve(dir, rev);
  const tree = await listTree(dir, commit);
  const metaBytes = await gitReadAt(dir, commit, METADATA_PATH.slice(1));
  const records = metaBytes
    ? parseMetadata(metaBytes.toString('utf8'), `${METADATA_PATH.slice(1)} at ${rev}`)
    : recordsFromTree(tree);
  const ct = (await git(dir, ['show', '-s', '--format=%ct', commit])).stdout.toString().trim();
  const defaultMtime = opts.mtimeNs ?? BigInt(ct || '0') * 1_000_000_000n;
  const metaItem = tree.get(METADATA_PATH);
  if (metaItem && metaBytes) {
    records.push({
      path: Buffer.from(METADATA_PATH),
      type: 'file',
      uid: 0,
      gid: 0,
      mode: 0o644,
      xattrs: new Map(),
    });
    records.sort((a, b) => Buffer.compare(a.path, b.path));
  }
  const byPath = new Map(records.map((r) => [r.path.toString('latin1'), r]));
  const blobs = new BlobReader(dir);
  const description = `revision ${rev} of ${dir}`;

  const toEntry = (r: MetaRecord): Entry => {
    const key = r.path.toString('latin1');
    const item = r.type === 'file' || r.type === 'symlink' ? tree.get(key) : undefined;
    const entry: Entry = {
      path: r.path,
      type: r.type,
      mode: r.mode,
      uid: r.uid,
      gid: r.gid,
      mtimeNs: r.mtimeNs ?? defaultMtime,
      size: r.type === 'file' ? (item?.size ?? 0) : 0,
      xattrs: r.xattrs,
    };
    if (r.type === 'char' || r.type === 'block') {
      entry.devMajor = r.devMajor;
      entry.devMinor = r.devMinor;
    }
    if (r.type === 'hardlink') entry.linkTarget = r.link;
    return entry;
  };

  async function* entries(): AsyncIterable<Entry> {
    for (const r of records) {
      const key = r.path.toString('latin1');
      const item = tree.get(key);
      if ((r.type === 'file' || r.type === 'symlink') && !item) {
        throw new CloudletsError(
          'ESOURCE',
          `${showPath(r.path)} is in the metadata file but not in the revision`,
          {
            where: description,
          },
        );
      }
      const entry = toEntry(r);
      if (r.type === 'symlink' && item) entry.linkTarget = await blobs.read(item.sha);
      // A hardlink offers its target's bytes too, as the directory source does.
      const blob =
        r.type === 'hardlink' ? tree.get(r.link!.toString('latin1')) : r.type === 'file' ? item : undefined;
      if (blob) {
        const sha = blob.sha;
        entry.content = async function* () {
          yield await blobs.read(sha);
        };
      }
      yield entry;
    }
  }

  async function readFile(imagePath: string): Promise<Buffer | undefined> {
    let path = imagePath;
    for (let hops = 0; hops < 40; hops++) {
      // Resolve symlinks in every component, inside the image: `..` stops at the root.
      const parts = path.split('/').filter((c) => c && c !== '.');
      let cur = '';
      let restarted = false;
      for (let i = 0; i < parts.length; i++) {
        const c = parts[i]!;
        if (c === '..') {
          cur = cur.slice(0, cur.lastIndexOf('/'));
          continue;
        }
        const next = `${cur}/${c}`;
        const key = Buffer.from(next).toString('latin1');
        const r = byPath.get(key);
        if (!r) return undefined;
        if (r.type === 'symlink') {
          const target = (await blobs.read(tree.get(key)!.sha)).toString('utf8');
          const rest = parts.slice(i + 1).join('/');
          path = `${target.startsWith('/') ? '' : `${cur}/`}${target}${rest ? `/${rest}` : ''}`;
          restarted = true;
          break;
        }
        cur = next;
      }
      if (restarted) continue;
      const key = Buffer.from(cur || '/').toString('latin1');
      const r = byPath.get(key);
      if (!r) return undefined;
      const real = r.type === 'hardlink' ? byPath.get(r.link!.toString('latin1')) : r;
      if (real?.type !== 'file') {
        throw new CloudletsError('EPATH', `is a ${r.type}, not a regular file`, {
          where: `${description}: ${imagePath}`,
        });
      }
      return blobs.read(tree.get(real.path.toString('latin1'))!.sha);
    }
    throw new CloudletsError('EPATH', 'too many levels of symbolic links', {
      where: `${description}: ${imagePath}`,
    });
  }

  return {
    description,
    entries,
    readFile,
    close: async () => blobs.close(),
  };
}
