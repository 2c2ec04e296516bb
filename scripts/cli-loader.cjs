#!/usr/bin/env node
// The `cloudlets` command: loads the bundled program (cloudlets.cjs, made by scripts/bundle.mjs) with
// the V8 code cache the build made for it (cloudlets.cjs.cache), so that a command starts without parsing
// and compiling a megabyte of JavaScript first (~25 ms of every command, measured). Node 22 can do this
// by itself (module.enableCompileCache); Node 20 cannot. A cache that does not fit this Node (another V8)
// is rejected by V8 and the program compiles as usual.
//
// CommonJS, not an ES module: Node loads an ES module entry with an asynchronous file read, which starts
// libuv's thread pool before the first line here runs, too early for UV_THREADPOOL_SIZE below.
'use strict';
const { spawn } = require('node:child_process');
const { existsSync, readdirSync, readFileSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { setPriority } = require('node:os');
const { join } = require('node:path');
const { setFlagsFromString } = require('node:v8');
const { Script } = require('node:vm');

const dir = __dirname;
const command = process.argv.slice(2).find((a) => !a.startsWith('-'));

// `tar` waits first of all for the template renderer's child to start (its walk streams entries from the
// start, and the templates must be rendered before the first goes out), so the child is spawned here,
// before the program is compiled (~15 ms sooner than from its first module), and sent ejs to prepare.
// renderer-child.json is written by the build: the child's arguments, spawn options and that first
// message, valid for the Node that built it (another one: src/cli/prestart.ts spawns it itself). `build`
// lists the whole tree before its first entry: it starts the child only for a template that needs it
// (src/templates/plain.ts), and the start overlaps the listing.
const EXPORTING = ['tar', 'build'];
const help = process.argv.includes('--help');
const exporting = EXPORTING.includes(command ?? '') && !help;
const start = { exporting, renderEarly: command === 'tar' && !help };

// An export (tar, build) is the command's own work on its main thread, plus the threads and processes it
// starts later (they keep its priority). The threads Node has started so far are all helpers: V8's
// optimizing compiler and garbage collector helpers, and the platform's timer thread. On a machine with
// few cores they take the main thread's turn whenever all cores are busy; at a lower priority they run on
// what it leaves. Measured on 2 cores: a 300 MB qcow2 build 5-8% faster, a tar archive no slower. Not for
// the other commands: a commit, whose git processes keep the cores busy, was 3-5% slower with them lowered
// (its optimized code and garbage collection came later). Linux: each thread is a task of /proc/self/task,
// and setpriority on a task id changes that thread alone; elsewhere nothing changes.
const HELPER_NICE = 10;
if (exporting) {
  try {
    for (const task of readdirSync('/proc/self/task')) {
      if (Number(task) !== process.pid) setPriority(Number(task), HELPER_NICE);
    }
  } catch {
    // No /proc, or a sandbox that forbids it: the helpers keep their priority.
  }
  // An export writes one output file from libuv's thread pool, a few writes queued at a time. With 4
  // pool threads they run side by side, but the file's inode lock lets one write copy at a time and the
  // others spin on it: on 2 cores, a whole core spent waiting that the main thread needed (perf: 28% of
  // the samples of 1 MiB writes queued 4 deep were that spinning). One pool thread writes them one after
  // the other with no spinning; a qcow2 build was 41 ms faster (median of 12). The export's other pool
  // work is a few small file operations, and a GCE archive's gzip, which takes its turns with the writes.
  // Read by libuv when the pool starts, on its first use, which is later than this; a value the user set
  // is kept (and goes on to child processes, as it would have anyway).
  process.env.UV_THREADPOOL_SIZE ??= '1';
}
const childFile = join(dir, 'renderer-child.json');
if (start.renderEarly && existsSync(childFile)) {
  const early = JSON.parse(readFileSync(childFile, 'utf8'));
  if (early.node === process.version) {
    start.child = spawn(process.execPath, early.args, early.options);
    start.child.stdin.on('error', () => {}); // a child that died is reported by the renderer
    start.child.stdin.write(Buffer.from(early.prepare, 'base64'));
  }
}
globalThis[Symbol.for('cloudlets.renderer')] = start;

// V8's young generation starts at 1 MiB a semi-space and doubles when much of it survives, up to 16 MiB:
// a disk build's scan keeps its entries, so it reached 16 MiB (32 MiB of new space) within half a second.
// Each page of it is memory the process touches for the first time, and on a VM a first touch is a
// page fault that costs the hypervisor some 10 us (measured here: 100 MB touched in 290-390 ms). Kept
// at 1 MiB, the young generation is collected more often (each time cheaply: little of it is garbage
// the program still holds) and the process touches ~28 MB less: a 300 MB qcow2 build took 6,000 fewer
// page faults and 6% less time (10 paired runs, every one faster); tar, commit and checkout no slower.
// Set before the program is compiled: the code cache (below) is made under the same flags, and V8
// rejects a cache made under others. Workers (VMDK deflate, the directory walk) inherit it.
//
// Node's own modules (crypto, zlib, fs/promises, ...) come with a code cache built into the node binary
// under V8's default flags, so V8 rejects that cache too once a flag has changed, and every built-in
// module loaded afterwards is compiled from source: twice the time (a disk build loads 38 of them
// after this line: 18 ms instead of 10, measured). The public built-ins a command is known to load
// (builtins.json: recorded by the build's code-cache warm-up, for the Node that made it) are loaded first.
const builtinsFile = join(dir, 'builtins.json');
const preloaded = knownBuiltins(builtinsFile, command);
for (const name of preloaded) require(`node:${name}`);
// process.moduleLoadList: Node's own list of the modules it has loaded (not documented; absent: no record).
const builtinsBefore = process.moduleLoadList?.length ?? 0;
setFlagsFromString('--semi-space-growth-factor=1');

const file = join(dir, 'cloudlets.cjs');
const cacheFile = `${file}.cache`;
const cachedData = existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
// Already wrapped in the module function, and ASCII (scripts/bundle.mjs).
const script = new Script(readFileSync(file, 'latin1'), {
  filename: file,
  ...(cachedData ? { cachedData } : {}),
});
// Set by the build only: the cache is written once the program has run a representative command.
if (process.env.CLOUDLETS_WRITE_CODE_CACHE === cacheFile) {
  process.on('exit', () => {
    writeFileSync(cacheFile, script.createCachedData());
    recordBuiltins(builtinsFile, command, preloaded, process.moduleLoadList?.slice(builtinsBefore) ?? []);
  });
}
const program = { exports: {} };
script.runInThisContext()(program.exports, Module.createRequire(file), program, file, dir);

/** The public built-in modules `command` loaded in the warm-up, if builtins.json was made by this Node. */
function knownBuiltins(file, command) {
  if (command === undefined || !existsSync(file)) return [];
  try {
    const known = JSON.parse(readFileSync(file, 'utf8'));
    const names =
      known.node === process.version && Object.hasOwn(known.commands, command) ? known.commands[command] : [];
    return Array.isArray(names) ? names.filter((name) => Module.isBuiltin(`node:${name}`)) : [];
  } catch {
    return []; // unreadable: the modules load when the program asks, only slower
  }
}

/** Adds to builtins.json the public built-ins `command` loaded (process.moduleLoadList's `NativeModule x`). */
function recordBuiltins(file, command, preloaded, loadedAfter) {
  if (command === undefined) return;
  let known = { node: process.version, commands: {} };
  if (existsSync(file)) {
    const old = JSON.parse(readFileSync(file, 'utf8'));
    if (old.node === process.version) known = old;
  }
  const names = new Set([...(known.commands[command] ?? []), ...preloaded]);
  for (const item of loadedAfter) {
    const name = item.startsWith('NativeModule ') ? item.slice('NativeModule '.length) : '';
    // Internal modules cannot be required; the public ones bring theirs along.
    if (name !== '' && !name.startsWith('internal/') && Module.isBuiltin(name)) names.add(name);
  }
  known.commands[command] = [...names];
  writeFileSync(file, `${JSON.stringify(known)}\n`);
}
