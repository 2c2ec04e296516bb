#!/usr/bin/env node
// The command ships as one file: dist/cli/main.js, tsc's output, is bundled in place with its dependencies.
// Why: every command starts by loading its module graph, about 40 of our modules and 100 of Ajv's, each
// resolved, read and compiled on its own; one file loads in a fraction of that (about 30 ms of every
// command's start-up, measured). The library (dist/index.js) stays unbundled for importers.
//
// The bundle sits where main.js was, two folders below the package root like every module it holds, so
// the paths modules take relative to their own file (`../../schema/...`) still name the same files.
// Dependencies loaded lazily through createRequire (semver, scslre, the ejs browser bundle) stay files.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/cli/main.js',
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies (Ajv, commander) call require(); an ES module has none of its own.
  banner: {
    js: "import { createRequire as __cloudletsCreateRequire } from 'node:module'; const require = __cloudletsCreateRequire(import.meta.url);",
  },
});
