// What kernel modules an initramfs carries, so a target profile can warn before building a disk that a
// cloud's storage or network device will not be found at boot (EC2's NVMe and ENA, VMware's SCSI
// controller...). An initramfs is one or more cpio (newc) archives, each possibly compressed, the
// compressed one usually last after an uncompressed "early" cpio holding CPU microcode; zero padding
// may separate them. Drivers built into the kernel are invisible here unless a `modules.builtin` list
// is found (in the initramfs, or passed from the image), so a driver not found is reported as "not
// found as a module", never as missing for certain.
import { spawn } from 'node:child_process';
import { gunzipSync } from 'node:zlib';

export interface InitrdContents {
  /** Module names (`nvme`, `vmw_pvscsi`: dashes as underscores) of every `*.ko[.xz|.zst|.gz]` file. */
  modules: Set<string>;
  /** Module names listed in a `modules.builtin` file inside the initramfs. */
  builtin: Set<string>;
  files: number;
  /** Why part of the initramfs could not be read (an unknown or unavailable compression), if it could not. */
  unreadable?: string | undefined;
}

/** Decompressed data larger than this is not an initramfs we inspect (a decompression bomb). */
const MAX_UNPACKED = 1 << 30;

export async function inspectInitrd(data: Buffer): Promise<InitrdContents> {
  const out: InitrdContents = { modules: new Set(), builtin: new Set(), files: 0 };
  await readSegments(data, out, 0);
  return out;
}

/** `kernel/drivers/nvme/host/nvme.ko.zst` → `nvme`; `xen-blkfront.ko` → `xen_blkfront`. */
export function moduleName(path: string): string | undefined {
  const m = /([^/]+)\.ko(?:\.(?:xz|zst|gz))?$/.exec(path);
  return m ? m[1]!.replaceAll('-', '_') : undefined;
}

/** Module names listed in a `modules.builtin` text. */
export function parseModulesBuiltin(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const name = moduleName(line.trim());
    if (name) names.add(name);
  }
  return names;
}

export type DriverState = 'module' | 'builtin' | 'not found as a module';

export function driverState(c: InitrdContents, driver: string, builtin?: Set<string>): DriverState {
  const name = driver.replaceAll('-', '_');
  if (c.modules.has(name)) return 'module';
  if (c.builtin.has(name) || builtin?.has(name)) return 'builtin';
  return 'not found as a module';
}

async function readSegments(buf: Buffer, out: InitrdContents, depth: number): Promise<void> {
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) {
      pos++;
      continue;
    }
    const magic = buf.subarray(pos, pos + 6);
    if (magic.toString('latin1') === '070701' || magic.toString('latin1') === '070702') {
      pos = readCpio(buf, pos, out);
      continue;
    }
    if (depth > 2) {
      out.unreadable = 'nested compression';
      return;
    }
    // A compressed segment runs to the end of the initramfs.
    const rest = buf.subarray(pos);
    const unpacked = await decompress(rest);
    if (typeof unpacked === 'string') {
      out.unreadable = unpacked;
      return;
    }
    await readSegments(unpacked, out, depth + 1);
    return;
  }
}

/** Reads one newc archive starting at `pos`; returns the position after its trailer. */
function readCpio(buf: Buffer, pos: number, out: InitrdContents): number {
  while (pos + 110 <= buf.length) {
    const magic = buf.toString('latin1', pos, pos + 6);
    if (magic !== '070701' && magic !== '070702') {
      out.unreadable = `bad cpio header at byte ${pos}`;
      return buf.length;
    }
    const field = (i: number) =>
      Number.parseInt(buf.toString('latin1', pos + 6 + i * 8, pos + 14 + i * 8), 16);
    const mode = field(1);
    const fileSize = field(6);
    const nameSize = field(11);
    const nameStart = pos + 110;
    const name = buf.toString('utf8', nameStart, nameStart + Math.max(0, nameSize - 1));
    const dataStart = align4(nameStart + nameSize);
    const next = align4(dataStart + fileSize);
    if (!Number.isFinite(fileSize) || !Number.isFinite(nameSize) || dataStart + fileSize > buf.length) {
      out.unreadable = `truncated cpio entry ${JSON.stringify(name)}`;
      return buf.length;
    }
    if (name === 'TRAILER!!!') return next;
    if ((mode & 0o170000) === 0o100000) {
      out.files++;
      const module = moduleName(name);
      if (module) out.modules.add(module);
      else if (name.endsWith('/modules.builtin')) {
        for (const n of parseModulesBuiltin(buf.toString('utf8', dataStart, dataStart + fileSize))) {
          out.builtin.add(n);
        }
      }
    }
    pos = next;
  }
  return buf.length;
}

const align4 = (n: number) => (n + 3) & ~3;

/** The decompressed bytes, or why they could not be had. */
async function decompress(data: Buffer): Promise<Buffer | string> {
  const starts = (...bytes: number[]) => bytes.every((b, i) => data[i] === b);
  try {
    // zlib stops at the end of the gzip stream and ignores the zero padding after it.
    if (starts(0x1f, 0x8b)) return gunzipSync(data, { maxOutputLength: MAX_UNPACKED });
  } catch (err) {
    return `gzip: ${(err as Error).message}`;
  }
  // Node 20 has no zstd or xz: the usual tools, fed the bytes on stdin (nothing from the image runs).
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return filter('zstd', ['-dcq'], data);
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a)) return filter('xz', ['-dcq', '--single-stream'], data);
  if (starts(0x5d, 0x00, 0x00)) return filter('xz', ['-dcq', '--format=lzma'], data);
  if (starts(0x02, 0x21, 0x4c, 0x18)) return filter('lz4', ['-dcq'], data);
  if (starts(0x42, 0x5a, 0x68)) return filter('bzip2', ['-dcq'], data);
  return `unknown compression (first bytes ${data.subarray(0, 4).toString('hex')})`;
}

/** Runs a decompressor on `input` with a size cap and a time limit; a failure is a reason, not a throw. */
function filter(cmd: string, args: string[], input: Buffer): Promise<Buffer | string> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const done = (value: Buffer | string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(value);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      done(`${cmd} took too long`);
    }, 60_000);
    child.on('error', (err) => done(`${cmd}: ${err.message} (is it installed?)`));
    child.stdout.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_UNPACKED) {
        child.kill('SIGKILL');
        done(`${cmd}: more than ${MAX_UNPACKED} bytes unpacked`);
      } else chunks.push(d);
    });
    child.on('close', () => {
      // Trailing padding after the compressed stream makes some tools exit non-zero; what was
      // decompressed is still good.
      done(size > 0 ? Buffer.concat(chunks) : `${cmd} could not decompress it`);
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}
