// `cloudlets find IMAGE [--only KINDS...] [-0] [--json]`
import { once } from 'node:events';
import type { Command } from 'commander';
import { findPaths, foundPathJson } from '../../image/find.js';
import { openImage } from '../../image/index.js';
import { parseKinds } from '../../stream/filters/select.js';
import type { CliContext, GlobalOptions } from '../context.js';

interface FindFlags {
  only?: string[];
  null?: boolean;
  json?: boolean;
}

const FLUSH_AT = 64 * 1024;

export async function run(ctx: CliContext, spec: string, flags: FindFlags, cmd: Command): Promise<void> {
  const globals = cmd.optsWithGlobals<GlobalOptions>();
  const kinds = parseKinds(flags.only);
  const image = await openImage(
    spec,
    globals.manifest !== undefined ? { manifestFile: globals.manifest } : {},
  );
  try {
    const out: Buffer[] = [];
    let pending = 0;
    const flush = async () => {
      if (pending === 0) return;
      const ok = ctx.stdout.write(Buffer.concat(out));
      out.length = 0;
      pending = 0;
      if (!ok) await once(ctx.stdout, 'drain', { signal: ctx.signal });
    };
    const push = async (buf: Buffer) => {
      out.push(buf);
      pending += buf.length;
      if (pending >= FLUSH_AT) await flush();
    };
    const end = Buffer.from(flags.null ? '\0' : '\n');
    let first = true;
    if (flags.json) await push(Buffer.from('['));
    for await (const found of findPaths(image, { kinds })) {
      ctx.signal.throwIfAborted();
      if (flags.json) {
        const item = JSON.stringify(foundPathJson(found));
        await push(Buffer.from(`${first ? '\n' : ',\n'}  ${item}`));
      } else {
        await push(found.path);
        await push(end);
      }
      first = false;
    }
    if (flags.json) await push(Buffer.from(first ? ']\n' : '\n]\n'));
    await flush();
  } finally {
    await image.source.close?.();
  }
}
