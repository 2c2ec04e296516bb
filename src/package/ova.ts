// An OVA: a ustar archive whose members are, in this order, NAME.ovf, NAME.mf (SHA-256 of each other
// member) and NAME-disk1.vmdk (streamOptimized). ESXi reads the descriptor first, so the order matters.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CloudletsError } from '../errors.js';
import { openAtomicOutput } from '../util/atomic-output.js';
import { type OvfOptions, ovfDescriptor } from './ovf.js';
import { padding, trailer, ustarHeader } from './tar-header.js';

export interface OvaOptions extends Omit<OvfOptions, 'diskFile' | 'diskFileSize' | 'populatedSize'> {
  /** Member name stem: NAME.ovf, NAME.mf, NAME-disk1.vmdk. */
  stem: string;
  /** Members' modification time, seconds since the epoch. */
  mtime: number;
  force?: boolean;
  signal?: AbortSignal | undefined;
}

export interface OvaResult {
  output: string;
  members: string[];
  vmdkSize: number;
  populatedSize: number | undefined;
}

/** A name safe as an OVA member stem (tar member names, OVF hrefs): letters, digits, `._-`. */
export function memberStem(name: string): string {
  const s = name
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/^[-.]+/, '')
    .slice(0, 80);
  return s === '' ? 'cloudlet' : s;
}

/** Writes the OVA `output` (replaced atomically) around the streamOptimized VMDK `vmdk`. */
export async function writeOva(vmdk: string, output: string, o: OvaOptions): Promise<OvaResult> {
  const names = { ovf: `${o.stem}.ovf`, mf: `${o.stem}.mf`, vmdk: `${o.stem}-disk1.vmdk` };
  const { size: vmdkSize } = await stat(vmdk);
  const vmdkSha = await sha256File(vmdk);
  const populatedSize = await streamOptimizedDataBytes(vmdk).catch(() => undefined);
  const { stem: _stem, mtime, force, signal, ...ovfOpts } = o;
  const ovf = Buffer.from(
    ovfDescriptor({ ...ovfOpts, diskFile: names.vmdk, diskFileSize: vmdkSize, populatedSize }),
    'utf8',
  );
  const mf = Buffer.from(
    `SHA256(${names.ovf})= ${createHash('sha256').update(ovf).digest('hex')}\n` +
      `SHA256(${names.vmdk})= ${vmdkSha}\n`,
  );

  const out = await openAtomicOutput(output, { force: force ?? false });
  try {
    async function* archive(): AsyncGenerator<Buffer> {
      let written = 0;
      for (const [name, data] of [
        [names.ovf, ovf],
        [names.mf, mf],
      ] as const) {
        const part = Buffer.concat([
          ustarHeader({ name, size: data.length, mtime }),
          data,
          padding(data.length),
        ]);
        written += part.length;
        yield part;
      }
      const head = ustarHeader({ name: names.vmdk, size: vmdkSize, mtime });
      written += head.length;
      yield head;
      let copied = 0;
      for await (const chunk of createReadStream(vmdk, { highWaterMark: 1 << 20 })) {
        if (signal?.aborted) throw new CloudletsError('EINTERRUPTED', 'interrupted', { where: output });
        copied += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (copied !== vmdkSize) throw new Error(`internal error: ${vmdk} changed while packaging`);
      written += vmdkSize + padding(vmdkSize).length;
      yield padding(vmdkSize);
      yield trailer(written);
    }
    await pipeline(archive, out.stream as Writable, { end: false });
    await out.commit();
  } catch (err) {
    await out.abort();
    if (err instanceof CloudletsError) throw err;
    throw new CloudletsError('EOUTPUT', `writing the OVA failed: ${(err as Error).message}`, {
      where: output,
      cause: err,
    });
  }
  return { output, members: [names.ovf, names.mf, names.vmdk], vmdkSize, populatedSize };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Bytes of the virtual disk that hold data in a streamOptimized VMDK: its grain markers times the grain
 * size (VMware's "populatedSize"). Walks the markers after the header (VMware's Virtual Disk Format 5.0,
 * "Stream-Optimized Compressed Sparse Extents"); throws on anything unexpected, and the caller leaves
 * the attribute out.
 */
export async function streamOptimizedDataBytes(path: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(512);
    await fh.read(head, 0, 512, 0);
    if (head.toString('latin1', 0, 4) !== 'KDMV') throw new Error('not a sparse VMDK');
    const grainBytes = Number(head.readBigUInt64LE(20)) * 512;
    const capacity = Number(head.readBigUInt64LE(12)) * 512;
    let pos = Number(head.readBigUInt64LE(64)) * 512; // overHead: where the markers begin
    const marker = Buffer.alloc(16);
    let grains = 0;
    while (pos + 16 <= size) {
      await fh.read(marker, 0, 16, pos);
      const value = Number(marker.readBigUInt64LE(0));
      const length = marker.readUInt32LE(8);
      if (length > 0) {
        grains++;
        pos = Math.ceil((pos + 12 + length) / 512) * 512;
        continue;
      }
      const type = marker.readUInt32LE(12);
      if (type === 0) break; // end of stream
      if (type > 3) throw new Error(`unknown marker type ${type}`);
      pos += 512 + value * 512;
    }
    return Math.min(grains * grainBytes, capacity);
  } finally {
    await fh.close();
  }
}
