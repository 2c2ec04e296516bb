/**
 * An archive file's decompressed bytes, the compression recognised by content (magic bytes), not by
 * file name.
 */
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import zlib from 'node:zlib';
import { CloudletsError } from '../errors.js';

export type Compression = 'gzip' | 'zstd' | 'none';

const READ_CHUNK = 1 << 20;

/** Reads the first bytes of `file` and names its compression; other compressions are refused. */
export async function sniffCompression(file: string): Promise<Compression> {
  let head: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      head = Buffer.alloc(8);
      const { bytesRead } = await fh.read(head, 0, 8, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new CloudletsError('ESOURCE', `cannot read the archive: ${(err as Error).message}`, {
      where: file,
      cause: err,
    });
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  const other =
    head.subarray(0, 3).toString('latin1') === 'BZh'
      ? 'bzip2'
      : head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))
        ? 'xz'
        : undefined;
  if (other) {
    throw new CloudletsError('ESOURCE', `${other}-compressed archives are not supported`, {
      where: file,
      hint: 'recompress it with gzip or zstd, or decompress it to a plain .tar',
    });
  }
  return 'none';
}

type ZstdFactory = () => zlib.Gunzip;

/** Node ≥ 22.15 has zstd in zlib; Node 20 does not, so there we run Debian's `zstd` program. */
const nodeZstd = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;

function corrupt(file: string, kind: string, err: unknown): CloudletsError {
  if (err instanceof CloudletsError) return err;
  return new CloudletsError('ESOURCE', `corrupt ${kind} data: ${(err as Error).message}`, {
    where: file,
    cause: err,
  });
}

/**
 * The decompressed bytes of `file` as chunks. Leaving the loop early (break, throw) closes the file and
 * stops any decompressor process.
 */
export async function* decompressedChunks(file: string, compression: Compression): AsyncGenerator<Buffer> {
  if (compression === 'zstd' && !nodeZstd) {
    yield* zstdProcess(file);
    return;
  }
  const input = createReadStream(file, { highWaterMark: READ_CHUNK });
  const stream =
    compression === 'none'
      ? input
      : input.pipe(compression === 'gzip' ? zlib.createGunzip({ chunkSize: 256 << 10 }) : nodeZstd!());
  if (stream !== input) input.on('error', (err) => stream.destroy(err));
  try {
    for await (const chunk of stream) yield chunk as Buffer;
  } catch (err) {
    throw corrupt(file, compression === 'none' ? 'archive' : compression, err);
  } finally {
    input.destroy();
    stream.destroy();
  }
}

async function* zstdProcess(file: string): AsyncGenerator<Buffer> {
  // Argument array, no shell; `--` so a file name starting with '-' is not an option.
  const child = spawn('zstd', ['-dcq', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.on('error', (error) => resolve({ code: null, error }));
    child.on('close', (code) => resolve({ code }));
  });
  let finished = false;
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const { code, error } = await exited;
    finished = true;
    if (error) {
      throw new CloudletsError('EEXTERNAL', `cannot run zstd: ${error.message}`, {
        where: file,
        hint: 'on Node 20, zstd archives need the zstd program: apt-get install zstd',
      });
    }
    if (code !== 0) {
      throw new CloudletsError('ESOURCE', `corrupt zstd data: ${stderr.trim() || `zstd exited ${code}`}`, {
        where: file,
      });
    }
  } catch (err) {
    const { error } = await Promise.race([exited, Promise.resolve({ error: undefined })]);
    if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CloudletsError('EEXTERNAL', 'cannot run zstd: the program is not installed', {
        where: file,
        hint: 'on Node 20, zstd archives need the zstd program: apt-get install zstd',
      });
    }
    throw corrupt(file, 'zstd', err);
  } finally {
    if (!finished) child.kill('SIGKILL');
  }
}
