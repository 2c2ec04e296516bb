#!/usr/bin/env node
// The command ships as one file: tsc's dist/cli/main.js is bundled with its dependencies into
// dist/cli/cloudlets.cjs, run by the small loader dist/cli/main.cjs (scripts/cli-loader.cjs) with a V8
// code cache made here. dist/cli/main.js becomes a line that runs the loader, for `node dist/cli/main.js`.
//
// Why one file: every command started by loading its module graph, about 40 of our modules and 100 of
// Ajv's, each resolved, read and compiled on its own (~30 ms of every start-up, measured). Why CommonJS: a
// code cache can be given to a script (node:vm), not to an ES module.
//
// The bundle sits two folders below the package root like every module it holds, so the paths modules
// take relative to their own file (`../../schema/...`) still name the same files; `import.meta.url` is the
// bundle's URL. The library (dist/index.js) stays unbundled for importers.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';

const bundle = 'dist/cli/cloudlets.cjs';
const SHIM =
  "#!/usr/bin/env node\n// The command is dist/cli/main.cjs; this runs it.\nimport './main.cjs';\n";
if (readFileSync('dist/cli/main.js', 'utf8') === SHIM) {
  throw new Error('dist/cli/main.js already runs the loader: run tsc first (npm run build does both)');
}
await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: 'linked',
  // Whitespace and syntax only (names stay, for stack traces and the functions workers are given as
  // source): 1.33 MB -> 0.89 MB, which every command reads and V8 copies into a string before compiling,
  // a page fault per 4 KiB of each (~500 fewer; a qcow2 build ~8 ms faster, median of 12 paired runs).
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
  define: {
    'import.meta.url': '__cloudletsModuleUrl',
    // ejs's browser bundle, which templates are rendered with (src/templates/ejs-bundle.ts).
    __CLOUDLETS_EJS_BUNDLE__: JSON.stringify(
      readFileSync(
        join(dirname(createRequire(import.meta.url).resolve('ejs')), '..', '..', 'ejs.js'),
        'utf8',
      ),
    ),
  },
  banner: { js: "const __cloudletsModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
});
// The bundle is stored as the loader compiles it: wrapped in CommonJS's module function, on its first
// line (main.ts's `#!` line came along there; a function cannot hold one) and after its last. Wrapped
// by the loader instead, the source was two strings that V8 copied into one (1.3 MB) before compiling.
// ASCII only (esbuild escapes the rest), so the loader reads it as latin1, with no UTF-8 decoding.
{
  const source = readFileSync(bundle, 'utf8');
  const firstLine = source.slice(0, source.indexOf('\n'));
  if (firstLine !== '' && !firstLine.startsWith('#!')) {
    throw new Error(
      `bundle: ${bundle} starts with code on its first line; the loader's wrapper needs it free`,
    );
  }
  if (/[^\x00-\x7f]/.test(source)) throw new Error(`bundle: ${bundle} is not ASCII (esbuild's charset?)`);
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source.slice(firstLine.length)}\n});`;
  writeFileSync(bundle, wrapped);
}
copyFileSync('scripts/cli-loader.cjs', 'dist/cli/main.cjs');
chmodSync('dist/cli/main.cjs', 0o755);
writeFileSync('dist/cli/main.js', SHIM);
chmodSync('dist/cli/main.js', 0o755);
// What the loader needs to spawn the template renderer's child before compiling the program: its
// arguments, spawn options and first message, from the modules tsc just built (the same code the program runs).
{
  const { childArguments, CHILD_SPAWN_OPTIONS } = await import('../dist/templates/renderer.js');
  const { encodeFrame } = await import('../dist/templates/frame.js');
  const { ejsBundleSource } = await import('../dist/templates/ejs-bundle.js');
  const prepare = encodeFrame({ type: 'prepare', ejs: await ejsBundleSource() });
  writeFileSync(
    'dist/cli/renderer-child.json',
    JSON.stringify({
      node: process.version,
      args: childArguments(),
      options: CHILD_SPAWN_OPTIONS,
      prepare: prepare.toString('base64'),
    }),
  );
}
rmSync('dist/cli/main.js.map', { force: true });
rmSync(`${bundle}.cache`, { force: true });
rmSync('dist/cli/builtins.json', { force: true });

// The code cache: made after representative commands have run, so that it holds the functions commands
// compile, not only the top level. Each run starts from the cache the one before wrote and writes it
// again with what it compiled too: an archive of the example image, then a commit, a second commit and
// a checkout of a copy of it (git needed; without it the cache holds what ran before), then a qcow2 disk
// of a copy given a stand-in kernel (grub-mkimage needed; the disk is never booted). Without it a build
// compiled some 250 functions of its own (ext4, qcow2, GPT, FAT) as they were first called: 10-15 ms of
// a 300 MB build's main thread. The cache grows by 150 KB; `--version` took no measurably longer.
// The same runs record which of Node's built-in modules each command loads (dist/cli/builtins.json),
// which the loader then loads before it changes a V8 flag (see there).
const work = mkdtempSync(join(tmpdir(), 'cloudlets-bundle-'));
const image = join(work, 'image');
const env = {
  ...process.env,
  CLOUDLETS_WRITE_CODE_CACHE: `${process.cwd()}/${bundle}.cache`,
  GIT_AUTHOR_NAME: 'build',
  GIT_AUTHOR_EMAIL: 'build@cloudlets.invalid',
  GIT_COMMITTER_NAME: 'build',
  GIT_COMMITTER_EMAIL: 'build@cloudlets.invalid',
};
const warmUps = [
  ['tar', 'examples/sample.cloudlet', '-o', '-'],
  ['commit', image, '-m', 'one'],
  ['commit', image, '-m', 'two'],
  ['checkout', image, 'FIRST'],
  ['build', 'BOOTABLE', '--format', 'qcow2', '-o', join(work, 'disk.qcow2')],
];
try {
  cpSync('examples/sample.cloudlet', image, { recursive: true, verbatimSymlinks: true });
  for (const args of warmUps) {
    if (args[2] === 'two') writeFileSync(join(image, 'etc/motd'), 'changed\n');
    if (args[2] === 'FIRST') {
      const first = spawnSync('git', ['-C', image, 'rev-list', '--max-parents=0', 'HEAD'], {
        encoding: 'utf8',
      });
      args[2] = first.stdout.trim();
    }
    if (args[1] === 'BOOTABLE') {
      args[1] = join(work, 'bootable');
      cpSync('examples/sample.cloudlet', args[1], { recursive: true, verbatimSymlinks: true });
      mkdirSync(join(args[1], 'boot'));
      writeFileSync(join(args[1], 'boot/vmlinuz-0'), Buffer.alloc(65536, 1));
      writeFileSync(join(args[1], 'boot/initrd.img-0'), Buffer.alloc(65536, 1));
    }
    const run = spawnSync(process.execPath, ['dist/cli/main.cjs', ...args], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    if (run.status !== 0) {
      // The cache holds what ran so far: commands still work, some only start slower.
      console.warn(`bundle: code cache warm-up \`${args[0]}\` failed: ${run.stderr.toString().trim()}`);
      break;
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
