// Reading a manifest: from `/.cloudlet/manifest` inside the image, or from an off-band file on the host.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { CloudletsError, isCloudletsError } from '../errors.js';
import type { ImageSource } from '../stream/entry.js';
import type { LoadedManifest, LoadManifestOptions } from './index.js';
import { parseJson } from './json.js';
import { validateManifest } from './validate.js';

export const MANIFEST_PATH = '/.cloudlet/manifest';
/** How a manifest inside the image is named in messages. */
export const MANIFEST_WHERE = '.cloudlet/manifest';
/** A manifest is a few kilobytes; anything past this is refused rather than held in memory. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

const MISSING_HINT =
  'write one with `cloudlets init DIR`, or name a manifest kept outside the image with --manifest FILE';

function tooLarge(where: string): CloudletsError {
  return new CloudletsError('EMANIFEST', `larger than ${MAX_MANIFEST_BYTES} bytes; not a manifest`, {
    where,
  });
}

export function decodeUtf8(bytes: Uint8Array, where: string, code: 'EMANIFEST' | 'ECONFIG'): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CloudletsError(code, 'is not valid UTF-8 text', { where });
  }
}

async function readEmbedded(source: ImageSource): Promise<Buffer> {
  let bytes: Buffer | undefined;
  try {
    bytes = await source.readFile(MANIFEST_PATH);
  } catch (err) {
    const reason = isCloudletsError(err) ? err.message : ((err as NodeJS.ErrnoException).code ?? String(err));
    throw new CloudletsError('EMANIFEST', `cannot be read: ${reason}`, {
      where: MANIFEST_WHERE,
      hint: 'the manifest must be a regular file in the image',
      cause: err,
    });
  }
  if (bytes === undefined) {
    throw new CloudletsError('EMANIFEST', `no manifest in ${source.description}`, {
      where: MANIFEST_WHERE,
      hint: MISSING_HINT,
    });
  }
  if (bytes.length > MAX_MANIFEST_BYTES) throw tooLarge(MANIFEST_WHERE);
  return bytes;
}

/** Reads a host file named by the user; pipes (`--manifest <(...)`) work, with the same size bound. */
export async function readHostFile(
  path: string,
  opts: { where: string; code: 'EMANIFEST' | 'ECONFIG'; maxBytes: number; missingHint?: string },
): Promise<Buffer> {
  const { where, code } = opts;
  try {
    const st = await stat(path);
    if (st.isDirectory()) throw new CloudletsError(code, 'is a directory, not a file', { where });
  } catch (err) {
    if (isCloudletsError(err)) throw err;
    const errno = (err as NodeJS.ErrnoException).code;
    if (errno === 'ENOENT') {
      throw new CloudletsError(code, 'no such file', {
        where,
        ...(opts.missingHint ? { hint: opts.missingHint } : {}),
      });
    }
    throw new CloudletsError(code, `cannot be read (${errno ?? String(err)})`, { where, cause: err });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      total += (chunk as Buffer).length;
      if (total > opts.maxBytes) {
        throw new CloudletsError(code, `larger than ${opts.maxBytes} bytes; refused`, { where });
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    if (isCloudletsError(err)) throw err;
    const errno = (err as NodeJS.ErrnoException).code;
    throw new CloudletsError(code, `cannot be read (${errno ?? String(err)})`, { where, cause: err });
  }
  return Buffer.concat(chunks);
}

export async function loadManifest(
  source: ImageSource,
  opts: LoadManifestOptions = {},
): Promise<LoadedManifest> {
  const where = opts.manifestFile ?? MANIFEST_WHERE;
  const bytes =
    opts.manifestFile === undefined
      ? await readEmbedded(source)
      : await readHostFile(opts.manifestFile, {
          where,
          code: 'EMANIFEST',
          maxBytes: MAX_MANIFEST_BYTES,
          missingHint: MISSING_HINT,
        });
  const value = parseJson(decodeUtf8(bytes, where, 'EMANIFEST'), { where, code: 'EMANIFEST' });
  const { manifest, warnings } = validateManifest(value, { where, ...(opts.strict ? { strict: true } : {}) });
  return { manifest, where, warnings };
}
