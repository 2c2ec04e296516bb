// JSON given on the command line: inline, `@FILE` (a host file), or `-` (standard input).
import { isAbsolute, resolve } from 'node:path';
import { CloudletsError } from '../errors.js';
import { type Image, openImage } from '../image/index.js';
import { parseJson } from '../manifest/json.js';
import { decodeUtf8, readHostFile } from '../manifest/load.js';
import { discardSpareRenderer, prestartRenderer } from '../templates/index.js';
import { type CliContext, warn } from './context.js';

/** A configuration is small; more than this from a file or a pipe is refused rather than buffered. */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;

export interface JsonInput {
  value: unknown;
  /** For messages: `what` for inline JSON, the file name for `@FILE`, `standard input` for `-`. */
  where: string;
}

async function readStdin(ctx: CliContext, where: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += buf.length;
    if (total > MAX_INPUT_BYTES) {
      throw new CloudletsError('ECONFIG', `larger than ${MAX_INPUT_BYTES} bytes; refused`, { where });
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/**
 * Reads and parses a JSON command-line value. `what` names inline JSON in messages (`configuration`,
 * `arguments`). Errors are CloudletsError ECONFIG naming the source and the line/column or JSON pointer.
 */
export async function readJsonInput(ctx: CliContext, value: string, what: string): Promise<JsonInput> {
  let text: string;
  let where: string;
  if (value === '-') {
    where = 'standard input';
    text = decodeUtf8(await readStdin(ctx, where), where, 'ECONFIG');
  } else if (value.startsWith('@')) {
    where = value.slice(1);
    if (where === '') throw new CloudletsError('EUSAGE', `${what}: @ must be followed by a file name`);
    const path = isAbsolute(where) ? where : resolve(ctx.cwd, where);
    text = decodeUtf8(
      await readHostFile(path, { where, code: 'ECONFIG', maxBytes: MAX_INPUT_BYTES }),
      where,
      'ECONFIG',
    );
  } else {
    where = what;
    text = value;
  }
  return { value: parseJson(text, { where, code: 'ECONFIG' }), where };
}

/**
 * Opens IMAGE with the global `--manifest`, prints the manifest's warnings, and closes it afterwards.
 * `exporting`: every entry is about to go out, templates rendered (tar, build), so the slow starts begin
 * first and overlap loading the manifest: the source's walk (ImageSource.readAhead) and, unless the walk
 * is find's, the template renderer's child process (prestartRenderer, stopped afterwards if no render
 * took it).
 */
export async function withImage<T>(
  ctx: CliContext,
  spec: string,
  opts: {
    manifestFile?: string | undefined;
    strict?: boolean | undefined;
    exporting?: boolean;
    /** How a directory image is walked (OpenImageOptions.walk). */
    walk?: 'thread' | 'find';
  },
  use: (image: Image) => Promise<T> | T,
): Promise<T> {
  // A walk by find lists the whole tree before the first entry goes out (a build): the render starts the
  // child only if a template needs one, and that start overlaps the listing.
  if (opts.exporting && opts.walk !== 'find') prestartRenderer();
  try {
    const image = await openImage(spec, {
      ...(opts.manifestFile === undefined ? {} : { manifestFile: opts.manifestFile }),
      ...(opts.strict ? { strict: true } : {}),
      ...(opts.exporting ? { readAhead: true } : {}),
      ...(opts.walk ? { walk: opts.walk } : {}),
    });
    try {
      for (const w of image.warnings) warn(ctx, w);
      return await use(image);
    } finally {
      await image.source.close?.();
    }
  } finally {
    if (opts.exporting) discardSpareRenderer();
  }
}

/** `--template-timeout SECONDS` as milliseconds. */
export function parseTemplateTimeout(value: string): number {
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) {
    throw new CloudletsError('EUSAGE', `not a positive number of seconds: ${JSON.stringify(value)}`, {
      where: '--template-timeout',
    });
  }
  return Math.round(s * 1000);
}
