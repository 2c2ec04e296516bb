import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { grubConfig } from '../boot/grub.js';
import type { Manifest } from '../manifest/index.js';
import { type Entry, type EntryStream, eachEntry, sourceStream } from '../stream/entry.js';
import { openDirectorySource } from '../stream/sources/dir.js';
import { buildDisk } from './index.js';
import { MiB, planLayout } from './layout.js';
import { withAtomicDisk } from './output.js';
import { compareVersions, detectKernels, replayEntries, scanTree } from './scan.js';
import { parseSize } from './size.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudlets-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseSize', () => {
  it('takes auto and sizes in whole MiB', () => {
    expect(parseSize('auto')).toBe('auto');
    expect(parseSize('2G')).toBe(2048 * MiB);
    expect(parseSize('512M')).toBe(512 * MiB);
    expect(parseSize('1.5GiB')).toBe(1536 * MiB);
    expect(parseSize(String(3 * MiB))).toBe(3 * MiB);
  });
  it('refuses garbage and sizes that are not whole MiB', () => {
    expect(() => parseSize('big')).toThrow(/not a size/);
    expect(() => parseSize('1000K')).toThrow(/whole number of MiB/);
  });
});

describe('kernel detection', () => {
  it('orders versions numerically and pairs each kernel with its initrd', () => {
    expect(compareVersions('6.1.0-10-amd64', '6.1.0-9-amd64')).toBeGreaterThan(0);
    expect(compareVersions('5.10.0-28', '6.1.0-1')).toBeLessThan(0);
    const paths = new Set([
      '/boot/vmlinuz-6.1.0-9-amd64',
      '/boot/vmlinuz-6.1.0-10-amd64',
      '/boot/initrd.img-6.1.0-10-amd64',
      '/boot/config-6.1.0-10-amd64',
    ]);
    expect(detectKernels(paths)[0]).toEqual({
      kernel: '/boot/vmlinuz-6.1.0-10-amd64',
      initrd: '/boot/initrd.img-6.1.0-10-amd64',
      version: '6.1.0-10-amd64',
    });
    expect(detectKernels(new Set(['/boot/grub']))).toEqual([]);
  });
});

describe('grubConfig', () => {
  it('finds the root by UUID, puts the console on tty0 and ttyS0, and never waits at a prompt', () => {
    const c = grubConfig({
      rootFsUuid: '0a1b2c3d-0000-4000-8000-000000000000',
      kernel: '/boot/vmlinuz',
      initrd: '/boot/initrd',
      cmdline: 'quiet  panic=-1',
    });
    expect(c).toContain('search --no-floppy --fs-uuid --set=root 0a1b2c3d-0000-4000-8000-000000000000');
    expect(c).toContain(
      "linux '/boot/vmlinuz' 'root=UUID=0a1b2c3d-0000-4000-8000-000000000000' 'ro' 'console=tty0' 'console=ttyS0,115200' 'quiet' 'panic=-1'",
    );
    expect(c).toContain("initrd '/boot/initrd'");
    expect(c.trim().split('\n').slice(-3)[0]).toBe('boot');
    expect(c.trim().endsWith('reboot')).toBe(true);
  });
  it('refuses arguments that could break out of their quotes', () => {
    const base = { rootFsUuid: '0a1b2c3d-0000-4000-8000-000000000000', kernel: '/boot/vmlinuz' };
    expect(() => grubConfig({ ...base, cmdline: "x'; reboot" })).toThrow(/quote/);
    expect(() => grubConfig({ ...base, kernel: '/boot/a\nreboot' })).toThrow(/control/);
  });
});

describe('planLayout', () => {
  it('aligns every partition to 1 MiB and keeps the root inside the usable range', () => {
    for (const boot of ['hybrid', 'bios', 'uefi'] as const) {
      const l = planLayout(boot, 300 * MiB);
      for (const p of [l.biosBoot, l.esp, l.root]) if (p) expect(p.offset % MiB).toBe(0);
      expect(l.root.offset + l.root.size).toBeLessThanOrEqual(300 * MiB - (boot === 'bios' ? 0 : 33 * 512));
    }
  });
});

describe('withAtomicDisk', () => {
  it('leaves no file behind when the writer fails, and refuses an existing output', async () => {
    const out = join(dir, 'fail.img');
    await expect(
      withAtomicDisk(out, MiB, {}, async (t) => {
        await t.write(0, Buffer.from('partial'));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(readdirSync(dir)).toEqual([]);
    writeFileSync(out, 'x');
    await expect(withAtomicDisk(out, MiB, {}, async () => {})).rejects.toThrow(/exists/);
    rmSync(out);
  });
  it('stops at the next write once interrupted, and removes the temporary file', async () => {
    const out = join(dir, 'int.img');
    const ac = new AbortController();
    await expect(
      withAtomicDisk(out, MiB, { signal: ac.signal }, async (t) => {
        await t.write(0, Buffer.alloc(512, 1));
        ac.abort();
        await t.write(512, Buffer.alloc(512, 1));
      }),
    ).rejects.toThrow(/interrupted/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('scanTree', () => {
  const base = { mode: 0o644, uid: 0, gid: 0, mtimeNs: 1_000_000_000n, xattrs: new Map() };
  const dirEntry = (p: string): Entry => ({ ...base, path: Buffer.from(p), type: 'dir', size: 0 });
  /** A file whose content can be read once only, as a tar archive's. */
  const onceFile = (p: string, text: string): Entry => {
    let read = false;
    return {
      ...base,
      path: Buffer.from(p),
      type: 'file',
      size: text.length,
      content: async function* () {
        if (read) throw new Error('read twice');
        read = true;
        yield Buffer.from(text);
      },
    };
  };
  /** A file that can be read any time, as a directory's (it has the synchronous reader). */
  const dirFile = (p: string): Entry => ({
    ...base,
    path: Buffer.from(p),
    type: 'file',
    size: 1,
    openContentSync: () => ({ read: () => 0, close: () => {} }),
  });
  async function* from(list: Entry[]): AsyncIterable<Entry> {
    yield* list;
  }
  const collect = async (it: EntryStream): Promise<string[]> => {
    const out: string[] = [];
    for await (const e of eachEntry(it)) {
      let text = '';
      if (e.content && !e.openContentSync) for await (const c of e.content()) text += c.toString();
      out.push(`${e.path.toString()}${text ? `=${text}` : ''}`);
    }
    return out;
  };
  const keep = { maxEntries: 10, maxBufferedBytes: 8 };

  it('keeps the entries for the write pass, with a copy of content that can be read only once', async () => {
    const list = [dirEntry('/'), dirEntry('/boot'), dirFile('/boot/vmlinuz-1'), onceFile('/etc', 'abc')];
    const s = await scanTree(from(list), { keep, digest: false });
    expect(s.replay?.length).toBe(4);
    expect(s.replay?.[2]).toBe(list[2]);
    expect(await collect(replayEntries(s.replay!))).toEqual(['/', '/boot', '/boot/vmlinuz-1', '/etc=abc']);
    expect([...s.paths]).toEqual(['/boot/vmlinuz-1', '/etc']);
    expect(s.hasEtc).toBe(false); // a file, not a directory
    expect(s.digest).toBe('');
  });

  it('keeps nothing past its limits, and gives the same digest either way', async () => {
    const big = [dirEntry('/'), onceFile('/a', '12345'), onceFile('/b', '6789')];
    const s = await scanTree(from(big), { keep });
    expect(s.replay).toBeUndefined();
    const many = Array.from({ length: 11 }, (_, i) => dirEntry(`/d${String(i).padStart(2, '0')}`));
    expect((await scanTree(from([dirEntry('/'), ...many]), { keep })).replay).toBeUndefined();
    const plain = await scanTree(from([dirEntry('/'), onceFile('/a', '12345'), onceFile('/b', '6789')]));
    expect(plain.replay).toBeUndefined();
    expect(plain.digest).toBe(s.digest);
    expect(s.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('stops a replay once interrupted, between batches', async () => {
    const ac = new AbortController();
    const kept = [dirEntry('/'), ...Array.from({ length: 2000 }, (_, i) => dirEntry(`/d${i}`))];
    let seen = 0;
    await expect(
      (async () => {
        for await (const batch of replayEntries(kept, ac.signal)) {
          seen += batch.length;
          ac.abort(new Error('stop'));
        }
      })(),
    ).rejects.toThrow('stop');
    expect(seen).toBeGreaterThan(0);
    expect(seen).toBeLessThan(kept.length);
  });
});

describe('buildDisk: passes over the tree', () => {
  const manifest: Manifest = {
    args: { type: 'object', properties: {} },
    templates: [],
    persistent: [],
    volatile: [],
    entrypoints: [],
  };
  /** A tiny image with a kernel; `fstab` puts an /etc/fstab of its own in. */
  function image(name: string, fstab: boolean): string {
    const root = join(dir, name);
    mkdirSync(join(root, 'boot'), { recursive: true });
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'boot/vmlinuz-1.0'), 'kernel');
    writeFileSync(join(root, 'boot/initrd.img-1.0'), 'initrd');
    if (fstab) writeFileSync(join(root, 'etc/fstab'), '# mine\n');
    return root;
  }
  async function build(root: string, opts: { size: number | 'auto'; reproducible?: boolean }) {
    const source = openDirectorySource(root);
    let calls = 0;
    let pulled = 0;
    let pulledBeforeWrite = -1;
    async function* counted(): EntryStream {
      for await (const item of sourceStream(source)) {
        pulled += Array.isArray(item) ? item.length : 1;
        yield item;
      }
    }
    const written: string[] = [];
    const result = await buildDisk({
      manifest,
      source,
      entries: () => {
        calls++;
        return counted();
      },
      output: join(dir, `${root.split('/').pop()}.img`),
      force: true,
      size: opts.size,
      reproducible: opts.reproducible ?? false,
      writeRootFs: async (entries) => {
        pulledBeforeWrite = pulled;
        for await (const e of eachEntry(entries)) written.push(e.path.toString());
      },
    });
    return { result, calls, pulledBeforeWrite, written };
  }

  it('scans the whole tree before writing, then writes the entries it kept, whatever the size', async () => {
    for (const fstab of [false, true]) {
      const root = image(`passes-${fstab}`, fstab);
      for (const opts of [
        { size: 128 * MiB },
        { size: 128 * MiB, reproducible: true },
        { size: 'auto' as const },
      ]) {
        const r = await build(root, opts);
        // Every entry was read (and the disk sized) before the root filesystem's first write; the
        // write replays what the scan kept, without a second call of entries().
        expect(r.pulledBeforeWrite).toBe(r.written.length - (r.result.fstabAdded ? 1 : 0));
        expect(r.calls).toBe(1);
        expect(r.result.fstabAdded).toBe(!fstab);
        expect(r.written).toContain('/etc/fstab');
        expect(r.result.kernel).toBe('/boot/vmlinuz-1.0');
        expect(r.result.initrd).toBe('/boot/initrd.img-1.0');
      }
    }
  });

  it('writes directories whose content follows siblings that extend their names (find listing, e2fsck)', async () => {
    const root = image('siblings', false);
    for (const d of ['usr/lib/python3/dist-packages', 'usr/lib/python3.11', 'a/b', 'a.d']) {
      mkdirSync(join(root, d), { recursive: true });
    }
    const files: Record<string, string> = {
      'usr/lib/python3.11/os.py': 'os',
      'usr/lib/python3/dist-packages/m.py': 'm',
      'usr/lib/python3-dev': 'dev',
      'usr/lib/python3 b': 'space',
      'a/b/x': 'x',
      'a/b-c': 'bc',
      'a-b': 'ab',
      'a.d/z': 'z',
    };
    for (const [p, data] of Object.entries(files)) writeFileSync(join(root, p), data);
    // A file with a second link outside the image (as in a tree copied with `cp -al`): a plain file in it.
    linkSync(join(root, 'a-b'), join(dir, 'siblings-outside-link'));
    const output = join(dir, 'siblings.img');
    const debugfs = (fs: string, request: string) =>
      execFileSync('debugfs', ['-R', request, fs], { encoding: 'utf8', stdio: 'pipe' });
    const inode = (fs: string, p: string) => /Inode: (\d+)/.exec(debugfs(fs, `stat "/${p}"`))?.[1];
    // Without a hard link inside the image (the writer indexes no paths), then with one.
    for (const inImage of [false, true]) {
      if (inImage) linkSync(join(root, 'a/b/x'), join(root, 'a.d/x-link'));
      const source = openDirectorySource(root, { walk: 'find' });
      const r = await buildDisk({
        manifest,
        source,
        entries: () => sourceStream(source),
        output,
        force: true,
        size: 'auto',
        boot: 'bios',
      });
      const fs = `${output}?offset=${r.rootOffset}`;
      const fsck = spawnSync('e2fsck', ['-fn', fs], { encoding: 'utf8' });
      expect(fsck.status, fsck.stdout).toBe(0);
      for (const [p, data] of Object.entries(files)) expect(debugfs(fs, `cat "/${p}"`)).toBe(data);
      expect(debugfs(fs, 'stat "/a-b"')).toMatch(/Links: 1\b/);
      if (inImage) {
        expect(inode(fs, 'a.d/x-link')).toBe(inode(fs, 'a/b/x'));
        expect(debugfs(fs, 'stat "/a/b/x"')).toMatch(/Links: 2\b/);
      }
    }
  });

  it('refuses a size too small for the content before writing anything', async () => {
    const root = image('too-small', false);
    // 200 MB of content (sparse on the host, but counted as data by the size estimate).
    writeFileSync(join(root, 'etc/big'), '');
    truncateSync(join(root, 'etc/big'), 200 * MiB);
    let wrote = false;
    await expect(
      buildDisk({
        manifest,
        source: openDirectorySource(root),
        entries: () => sourceStream(openDirectorySource(root)),
        output: join(dir, 'too-small.img'),
        size: 128 * MiB,
        writeRootFs: async () => {
          wrote = true;
        },
      }),
    ).rejects.toMatchObject({ code: 'EUSAGE', where: '--size' });
    expect(wrote).toBe(false);
    expect(existsSync(join(dir, 'too-small.img'))).toBe(false);
  });

  it('refuses, before writing, a fixed size that leaves no room for a root filesystem', async () => {
    const root = image('tiny', false);
    await expect(build(root, { size: 64 * MiB })).rejects.toMatchObject({ code: 'EUSAGE', where: '--size' });
    expect(existsSync(join(dir, 'tiny.img'))).toBe(false);
  });
});
