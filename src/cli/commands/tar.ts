// `cloudlets tar IMAGE [-o FILE|-]`: the image as a POSIX pax archive, templates rendered, volatile left out.
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { Command } from 'commander';
import { validateConfiguration } from '../../config/index.js';
import { CloudletsError } from '../../errors.js';
import type { Image } from '../../image/index.js';
import { exportEntries, type OnlyKind } from '../../pipeline/export.js';
import { asBatch, type Entry, type EntryStream } from '../../stream/entry.js';
import { writeTar } from '../../stream/sinks/tar.js';
import { openAtomicOutput } from '../../util/atomic-output.js';
import { createProgress } from '../../util/progress.js';
import { type CliContext, type GlobalOptions, warn } from '../context.js';
import { parseTemplateTimeout, readJsonInput, withImage } from '../input.js';

interface TarOptions {
  config?: string;
  only?: OnlyKind[];
  output: string;
  force?: boolean;
  mtime?: string;
  templateTimeout: string;
}

/**
 * `--mtime` / `SOURCE_DATE_EPOCH` as nanoseconds: epoch seconds (a fraction allowed for --mtime) or an
 * ISO 8601 date-time (--mtime only; SOURCE_DATE_EPOCH is an integer by its specification).
 */
export function parseMtime(value: string, where: string): bigint {
  const text = value.trim();
  const integerOnly = where === 'SOURCE_DATE_EPOCH';
  const m = /^(-?\d{1,15})(?:\.(\d{1,9}))?$/.exec(text);
  if (m && (!integerOnly || m[2] === undefined)) {
    const frac = BigInt((m[2] ?? '').padEnd(9, '0'));
    const sec = BigInt(m[1]!);
    return sec * 1_000_000_000n + (m[1]!.startsWith('-') ? -frac : frac);
  }
  if (
    !integerOnly &&
    /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(text)
  ) {
    const ms = Date.parse(text);
    if (!Number.isNaN(ms)) return BigInt(ms) * 1_000_000n;
  }
  throw new CloudletsError('EUSAGE', `not a time: ${JSON.stringify(value)}`, {
    where,
    hint: integerOnly
      ? 'SOURCE_DATE_EPOCH is whole seconds since 1970-01-01 UTC'
      : 'give seconds since the epoch (1700000000) or an ISO 8601 time (2024-01-01T00:00:00Z)',
  });
}

export async function run(ctx: CliContext, image: string, opts: TarOptions, cmd: Command): Promise<void> {
  const { manifest } = cmd.optsWithGlobals<GlobalOptions>();
  const sde = ctx.env.SOURCE_DATE_EPOCH;
  const mtimeClampNs =
    opts.mtime !== undefined
      ? parseMtime(opts.mtime, '--mtime')
      : sde !== undefined && sde !== ''
        ? parseMtime(sde, 'SOURCE_DATE_EPOCH')
        : undefined;
  const templateTimeoutMs = parseTemplateTimeout(opts.templateTimeout);
  const toStdout = opts.output === '-';
  if (toStdout && (ctx.stdout as { isTTY?: boolean }).isTTY) {
    throw new CloudletsError('EUSAGE', 'refusing to write an archive to a terminal', {
      hint: 'use -o FILE, or redirect standard output',
    });
  }
  const outPath = toStdout ? '-' : isAbsolute(opts.output) ? opts.output : resolve(ctx.cwd, opts.output);
  // Everything that can be refused is checked before anything is written.
  const input =
    opts.config === undefined
      ? { value: {}, where: 'configuration' }
      : await readJsonInput(ctx, opts.config, 'configuration');

  await withImage(ctx, image, { manifestFile: manifest, exporting: true }, async (img) => {
    const configuration = validateConfiguration(img.manifest, input.value, { where: input.where });
    const entries = await exportEntries(img, {
      configuration,
      only: opts.only,
      templateTimeoutMs,
      signal: ctx.signal,
      onWarning: (message) => warn(ctx, message),
    });
    const tarOpts = { mtimeClampNs, signal: ctx.signal };
    if (toStdout) {
      const result = await writeTar(entries, ctx.stdout, tarOpts);
      reportSkipped(ctx, result.skipped);
      return;
    }

    const out = await openAtomicOutput(outPath, { force: opts.force ?? false });
    // SIGINT/SIGTERM: writeTar stops at its next entry or batch once the writes under way have ended (the
    // descriptor is not closed under them: its number could be reused by then); the temp file is removed
    // below.
    const progress = createProgress({ stream: ctx.stderr, enabled: ctx.interactive, label: opts.output });
    try {
      const result = await writeTar(
        withoutOwnOutput(entries, img, [outPath, out.tempPath], ctx),
        // The new file's descriptor, written from its start by the thread pool: the fast path (TarOutput).
        { fd: out.fd, position: 0 },
        {
          ...tarOpts,
          onProgress: (p) => progress.update(p.bytes),
        },
      );
      ctx.signal.throwIfAborted();
      await out.commit();
      progress.done();
      reportSkipped(ctx, result.skipped);
    } catch (err) {
      progress.done({ clear: true });
      await out.abort();
      throw ctx.signal.aborted ? ctx.signal.reason : err;
    }
  });
}

function reportSkipped(ctx: CliContext, skipped: number): void {
  if (skipped > 0)
    warn(ctx, `${skipped} socket${skipped === 1 ? '' : 's'} left out: a tar archive cannot hold sockets`);
}

/**
 * An output written inside the image directory would be read back into itself while it grows (GNU tar
 * says "file is the archive; not dumped"): those paths are left out.
 */
function withoutOwnOutput(
  entries: EntryStream,
  img: Image,
  hostPaths: string[],
  ctx: CliContext,
): EntryStream {
  const root = resolve(ctx.cwd, img.location);
  const inside = img.kind === 'directory' ? hostPaths.map((p) => relative(root, p)) : [];
  const skip = new Set(
    inside.filter((r) => r !== '' && !r.startsWith(`..${sep}`) && !isAbsolute(r)).map((r) => `/${r}`),
  );
  // Usually nothing to leave out: no extra generator layer then.
  if (skip.size === 0) return entries;
  return skipPaths(entries, skip, ctx);
}

async function* skipPaths(
  entries: EntryStream,
  skip: Set<string>,
  ctx: CliContext,
): AsyncGenerator<readonly Entry[]> {
  for await (const item of entries) {
    yield asBatch(item).filter((e) => {
      if (!skip.has(e.path.toString('utf8'))) return true;
      warn(ctx, `${e.path.toString('utf8')}: the output itself, left out`);
      return false;
    });
  }
}
