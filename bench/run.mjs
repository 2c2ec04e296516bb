#!/usr/bin/env node
// Benchmarks: our command against a reference tool on the same input, in the same run.
//
//   npm run bench               every benchmark
//   npm run bench -- tar        only those whose name contains "tar"
//
// Each benchmark runs both commands once to warm the page cache, then RUNS times each, alternating,
// and reports the median wall time, the ratio ours/reference and the peak RSS of each. Peak RSS is
// GNU time's %M (`/usr/bin/time`, Debian package `time`): the maximum resident set size of the
// command's process, in KiB, from wait4's rusage. Inputs are generated once into .cache/bench/.
//
// To add a benchmark (disk build vs mkfs.ext4, ...), add an entry to BENCHMARKS.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli/main.cjs');
const CACHE = join(ROOT, '.cache/bench');
const TIME = '/usr/bin/time';
const RUNS = 5;

/** The inputs benchmarks share, each generated once and cached. */
const INPUTS = {
  tree: () => generateTree(join(CACHE, 'tree-v2')),
  bootTree: () => generateBootTree(join(CACHE, 'boot-tree-v1')),
};

/** The disk benchmarks: the same 1 GiB disk from the same tree, ours in-process, theirs by the usual tools. */
const DISK_MIB = 1024;
const REFERENCE_DISK = join(ROOT, 'bench/reference-disk.sh');
const diskBenchmark = (name, format, subformat, qemuOpts, what) => ({
  name,
  input: 'bootTree',
  what,
  ours: (tree, out) => [
    process.execPath,
    CLI,
    'build',
    tree,
    '--format',
    format,
    ...(subformat ? ['--subformat', subformat] : []),
    '--size',
    `${DISK_MIB}M`,
    '-o',
    join(out, `x.${format}`),
    '--force',
  ],
  reference: (tree, out) => [
    REFERENCE_DISK,
    tree,
    join(out, `y.${format}`),
    String(DISK_MIB),
    format,
    qemuOpts,
  ],
  targets: { ratio: 0.5, rssMiB: 256 },
});

/** @type {Array<{name: string, input: keyof typeof INPUTS, what: string, ours: (i: string, o: string) => string[], reference: (i: string, o: string) => string[], targets: {ratio: number, rssMiB: number}}>} */
const BENCHMARKS = [
  {
    name: 'tar',
    input: 'tree',
    what: 'cloudlets tar vs GNU tar --format=pax (10,000 files, ~300 MB)',
    ours: (tree, out) => [process.execPath, CLI, 'tar', tree, '-o', join(out, 'x.tar'), '--force'],
    reference: (tree, out) => [
      'tar',
      '--format=pax',
      '--numeric-owner',
      '--xattrs',
      '-cf',
      join(out, 'y.tar'),
      '-C',
      tree,
      '.',
    ],
    targets: { ratio: 1.0, rssMiB: 256 },
  },
  {
    ...diskBenchmark(
      'disk-raw',
      'raw',
      undefined,
      '',
      'directory -> bootable raw disk: cloudlets build vs mkfs.ext4 -d + sgdisk + GRUB (mkimage, dd)',
    ),
    targets: { ratio: 1.0, rssMiB: 256 },
  },
  diskBenchmark(
    'disk-qcow2',
    'qcow2',
    undefined,
    '',
    'directory -> bootable qcow2: cloudlets build vs mkfs.ext4 -d + sgdisk + GRUB + qemu-img convert',
  ),
  diskBenchmark(
    'disk-vmdk-stream',
    'vmdk',
    'streamOptimized',
    'subformat=streamOptimized',
    'directory -> bootable streamOptimized VMDK: cloudlets build vs the same ending in qemu-img convert',
  ),
  vcsBenchmark('vcs-commit', 'commit'),
  vcsBenchmark('vcs-checkout', 'checkout'),
];

/**
 * Versioning: `cloudlets commit` / `cloudlets checkout` against plain git on copies of the same tree.
 * commit: each run commits 2,000 rewritten files on top of the first commit (made by prepare).
 * checkout: each run switches between the two revisions prepare made, the other way each time.
 */
function vcsBenchmark(name, op) {
  // No automatic gc: a detached `git gc --auto` (after prepare's 10,000-object commit, and every few runs)
  // would compete for the CPU with whichever side is being measured. cloudlets never runs one either.
  const GIT = ['git', '-c', 'user.name=bench', '-c', 'user.email=bench@example.invalid', '-c', 'gc.auto=0'];
  const changeFiles = (dir, i) => {
    for (let k = 0; k < 2000; k++) {
      // generateTree puts file k in the (k % 320)th of its pkg/sub directories.
      const d = k % 320;
      const f = join(dir, `usr/share/pkg${Math.floor(d / 8)}/sub${d % 8}`, `file${k}.dat`);
      writeFileSync(f, `run ${i} ${k}\n`);
    }
  };
  const sh = (argv, cwd) => {
    const r = spawnSync(argv[0], argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  };
  const ours = (out) => join(out, 'ours');
  const theirs = (out) => join(out, 'theirs');
  const revs = new Map();
  const revParse = (dir) =>
    spawnSync('git', ['-C', dir, 'rev-parse', 'HEAD~1', 'HEAD'], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
  return {
    name,
    input: 'tree',
    what:
      op === 'commit'
        ? 'cloudlets commit vs git add -A && git commit (2,000 of 10,000 files changed)'
        : 'cloudlets checkout vs git checkout (switching between revisions 2,000 files apart)',
    prepare(tree, out) {
      for (const dir of [ours(out), theirs(out)]) sh(['cp', '-a', tree, dir]);
      sh([process.execPath, CLI, 'commit', ours(out), '-m', 'first'], out);
      sh([...GIT, 'init', '-q'], theirs(out));
      sh([...GIT, 'add', '-A'], theirs(out));
      sh([...GIT, 'commit', '-qm', 'first'], theirs(out));
      if (op === 'checkout') {
        changeFiles(ours(out), 'second');
        changeFiles(theirs(out), 'second');
        sh([process.execPath, CLI, 'commit', ours(out), '-m', 'second'], out);
        sh([...GIT, 'add', '-A'], theirs(out));
        sh([...GIT, 'commit', '-qm', 'second'], theirs(out));
        for (const dir of [ours(out), theirs(out)]) revs.set(dir, revParse(dir));
      }
      // The state plain git would reach by itself (its auto gc packs the first commit's loose objects),
      // and no writeback of prepare's gigabyte left to land in the measured runs.
      sh([...GIT, 'gc', '-q'], theirs(out));
      sh(['sync'], out);
    },
    ours: (_tree, out, i) => {
      if (op === 'commit') {
        changeFiles(ours(out), i);
        return [process.execPath, CLI, 'commit', ours(out), '-m', `run ${i}`];
      }
      return [process.execPath, CLI, 'checkout', ours(out), revs.get(ours(out))[i % 2]];
    },
    reference: (_tree, out, i) => {
      if (op === 'commit') {
        changeFiles(theirs(out), i);
        return [
          'sh',
          '-c',
          `cd "$1" && ${GIT.join(' ')} add -A && ${GIT.join(' ')} commit -qm "run $2"`,
          'sh',
          theirs(out),
          String(i),
        ];
      }
      return [...GIT, '-C', theirs(out), 'checkout', '-q', revs.get(theirs(out))[i % 2]];
    },
    targets: { ratio: 1.3, rssMiB: 256 },
  };
}

// ---------------------------------------------------------------------------------------------------
// Input generation

/** A small deterministic generator, so that the tree has the same shape on every machine. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function generateTree(dir) {
  const done = `${dir}.done`;
  if (existsSync(done)) return dir;
  rmSync(dir, { recursive: true, force: true });
  process.stderr.write(`bench: generating ${dir} (once)...\n`);
  const rand = rng(42);
  // Incompressible content, sliced from one random block so generation stays fast.
  const block = randomBytes(4 * 1024 * 1024);
  const write = (path, size) => {
    mkdirSync(dirname(path), { recursive: true });
    const buf = Buffer.allocUnsafe(size);
    for (let off = 0; off < size; ) {
      const start = Math.floor(rand() * (block.length / 2));
      const n = Math.min(size - off, block.length - start);
      block.copy(buf, off, start, start + n);
      off += n;
    }
    writeFileSync(path, buf);
  };

  // Directories: 40 top-level trees of 8 subdirectories, plus a few chains 16 levels deep.
  const dirs = [];
  for (let a = 0; a < 40; a++) for (let b = 0; b < 8; b++) dirs.push(`usr/share/pkg${a}/sub${b}`);
  for (let d = 0; d < 4; d++)
    dirs.push(`srv/deep${d}/${Array.from({ length: 16 }, (_, i) => `l${i}`).join('/')}`);
  let total = 0;
  let files = 0;
  // 9,880 small files (0-16 KiB, most under 4 KiB), 100 of 0.5-2 MiB, 5 of 15-35 MiB.
  for (let i = 0; i < 9880; i++) {
    const r = rand();
    const size = Math.floor(r < 0.8 ? r * 5000 : rand() * 16384);
    write(join(dir, dirs[i % dirs.length], `file${i}.dat`), size);
    total += size;
    files++;
  }
  for (let i = 0; i < 100; i++) {
    const size = Math.floor((0.5 + rand() * 1.5) * 1024 * 1024);
    write(join(dir, 'opt/blobs', `blob${i}.bin`), size);
    total += size;
    files++;
  }
  for (const mb of [15, 20, 25, 30, 35]) {
    write(join(dir, 'var/lib/images', `disk-${mb}.img`), mb * 1024 * 1024);
    total += mb * 1024 * 1024;
    files++;
  }
  // Volatile content (left out by cloudlets, archived by GNU tar) and a template.
  for (let i = 0; i < 10; i++) write(join(dir, 'tmp', `scratch${i}`), 1000);
  for (let i = 0; i < 5; i++) write(join(dir, 'var/log', `syslog.${i}`), 2000);
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc/hostname'), '<%= args.hostname %>\n');
  mkdirSync(join(dir, '.cloudlet'), { recursive: true });
  writeFileSync(
    join(dir, '.cloudlet/manifest'),
    `${JSON.stringify(
      {
        name: 'bench',
        arch: 'x86_64',
        args: { hostname: { type: 'string', default: 'bench-host' } },
        templates: ['/etc/hostname'],
        persistent: ['/var/lib'],
        volatile: ['/tmp/.+', '/var/log/(?!apt).+'],
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(done, JSON.stringify({ files, bytes: total }));
  return dir;
}

/** The benchmark tree plus the boot fixture's kernel and initrd (scripts/fixture), hard-linked. */
function generateBootTree(dir) {
  const done = `${dir}.done`;
  if (existsSync(done)) return dir;
  const tree = INPUTS.tree();
  const fixture = join(ROOT, '.cache/fixture/image');
  if (!existsSync(join(fixture, 'boot'))) {
    const r = spawnSync(join(ROOT, 'scripts/fixture/build-fixture.sh'), [], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('cannot build the boot fixture (scripts/fixture/build-fixture.sh)');
  }
  rmSync(dir, { recursive: true, force: true });
  for (const [src, dst] of [
    [tree, dir],
    [join(fixture, 'boot'), join(dir, 'boot')],
  ]) {
    const r = spawnSync('cp', ['-al', src, dst], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`cannot link ${src} into ${dst}`);
  }
  writeFileSync(done, readFileSync(`${tree}.done`));
  return dir;
}

// ---------------------------------------------------------------------------------------------------
// Measuring

function measure(argv) {
  const rssFile = join(tmpdir(), `cloudlets-bench-rss-${process.pid}`);
  // Untimed: what the previous command left to write back (a 300 MB archive, 2,000 loose objects) lands
  // now, not in the middle of the next command, whichever side that is.
  spawnSync('sync');
  const t0 = process.hrtime.bigint();
  const res = spawnSync(TIME, ['-o', rssFile, '-f', '%M', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (res.error) throw new Error(`cannot run ${TIME} (apt-get install time): ${res.error.message}`);
  if (res.status !== 0) {
    throw new Error(`${argv.join(' ')} exited with ${res.status}:\n${res.stderr.toString().slice(0, 2000)}`);
  }
  const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
  rmSync(rssFile, { force: true });
  return { seconds, rssKiB: Number(lines[lines.length - 1]) };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function runBenchmark(bench) {
  const input = INPUTS[bench.input]();
  const out = mkdtempSync(join(tmpdir(), 'cloudlets-bench-'));
  try {
    // Run 0 warms the page cache; `prepare` (untimed) sets up each side's state before its runs.
    bench.prepare?.(input, out);
    measure(bench.ours(input, out, 0));
    measure(bench.reference(input, out, 0));
    const a = [];
    const b = [];
    for (let i = 1; i <= RUNS; i++) {
      a.push(measure(bench.ours(input, out, i)));
      b.push(measure(bench.reference(input, out, i)));
    }
    const oursS = median(a.map((r) => r.seconds));
    const refS = median(b.map((r) => r.seconds));
    const oursRss = Math.max(...a.map((r) => r.rssKiB)) / 1024;
    const refRss = Math.max(...b.map((r) => r.rssKiB)) / 1024;
    const ratio = oursS / refS;
    return {
      name: bench.name,
      what: bench.what,
      oursSeconds: round(oursS),
      referenceSeconds: round(refS),
      ratio: round(ratio),
      oursPeakRssMiB: round(oursRss, 1),
      referencePeakRssMiB: round(refRss, 1),
      oursRuns: a.map((r) => round(r.seconds)),
      referenceRuns: b.map((r) => round(r.seconds)),
      pass: ratio <= bench.targets.ratio && oursRss <= bench.targets.rssMiB,
      targets: bench.targets,
    };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const round = (x, digits = 3) => Number(x.toFixed(digits));

function main() {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
  const filter = process.argv[2];
  const selected = BENCHMARKS.filter((b) => !filter || b.name.includes(filter));
  const results = selected.map(runBenchmark);
  const rows = [
    ['benchmark', 'ours s', 'ref s', 'ratio', 'ours RSS MiB', 'ref RSS MiB', 'target'],
    ...results.map((r) => [
      r.name,
      r.oursSeconds.toFixed(3),
      r.referenceSeconds.toFixed(3),
      r.ratio.toFixed(3),
      r.oursPeakRssMiB.toFixed(1),
      r.referencePeakRssMiB.toFixed(1),
      `${r.pass ? 'met' : 'MISSED'} (ratio <= ${r.targets.ratio}, RSS <= ${r.targets.rssMiB} MiB)`,
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  '));
  for (const r of results) {
    const meta = r.name === 'tar' ? JSON.parse(readFileSync(`${INPUTS.tree()}.done`, 'utf8')) : {};
    console.log(JSON.stringify({ ...r, input: meta, medianOf: RUNS, rss: 'GNU time %M (wait4 ru_maxrss)' }));
  }
}

try {
  main();
} catch (err) {
  console.error(`bench: ${err.message}`);
  process.exit(1);
}
