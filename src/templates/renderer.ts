/**
 * The parent's side of the renderer child process: starts it locked down, sends requests, and kills
 * it when an answer does not come in time or the child misbehaves.
 *
 * Layers, outermost first:
 *  - a separate process, so a crash or an out-of-memory stops only the renderer, and the parent's
 *    watchdog can always kill it (a vm time limit cannot stop every kind of hang);
 *  - Node's permission model with no `--allow-*` at all: the program comes in with `-e` and ejs
 *    over stdin, so the child may not read or write any file, spawn, start workers or load addons;
 *    `--disallow-code-generation-from-strings` so even a reference to the child's own Function
 *    constructor compiles nothing; a 128 MB heap; an empty environment; cwd `/`;
 *  - inside, a fresh vm context per template (./child.ts, ./sandbox.ts).
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { type ChildReply, type ChildRequest, childMain, createTemplateContext } from './child.js';
import { createFrameReader, encodeFrame } from './frame.js';
import { sandboxBoot } from './sandbox.js';

export const HEAP_LIMIT_MB = 128;
const MAX_REPLY_BODY = 16 * 1024 * 1024;
const STDERR_TAIL = 4096;

export interface Reply {
  header: ChildReply;
  body: Buffer;
}

/** Why the child did not answer. */
export class RendererStopped extends Error {
  constructor(
    readonly reason: 'timeout' | 'crash' | 'protocol',
    message: string,
  ) {
    super(message);
  }
}

export interface Renderer {
  /** Sends one request; rejects with RendererStopped (and kills the child) after `limitMs`. */
  request(message: ChildRequest, limitMs: number): Promise<Reply>;
  /** Sends a message that has no answer (`prepare`). */
  post(message: ChildRequest): void;
  close(): void;
}

/** `--permission` from Node 22.13/23.5 on; `--experimental-permission` before. */
export function permissionFlag(): string {
  const flags = process.allowedNodeEnvironmentFlags;
  if (flags.has('--permission')) return '--permission';
  if (flags.has('--experimental-permission')) return '--experimental-permission';
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 13) ? '--permission' : '--experimental-permission';
}

/** The child's program: childMain with its helpers passed in as source. */
export function childProgram(): string {
  const sandbox = JSON.stringify(`(${sandboxBoot.toString()})`);
  return `'use strict';(${childMain.toString()})(require('node:vm'), process, ${encodeFrame.toString()}, ${createFrameReader.toString()}, ${createTemplateContext.toString()}, ${sandbox});`;
}

export function childArguments(): string[] {
  return [
    permissionFlag(),
    '--experimental-vm-modules',
    '--disallow-code-generation-from-strings',
    `--max-old-space-size=${HEAP_LIMIT_MB}`,
    '--no-addons',
    '--no-warnings',
    '--input-type=commonjs',
    '-e',
    childProgram(),
  ];
}

/**
 * How the child is spawned. The command's loader (scripts/cli-loader.cjs) spawns it the same way, from
 * the arguments and these options the build wrote down (renderer-child.json), before the program is
 * even compiled.
 */
export const CHILD_SPAWN_OPTIONS: SpawnOptions = { env: {}, cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] };

/** Starts a renderer, or takes over a child already spawned as startRenderer would (the loader's). */
export function startRenderer(spawned?: ChildProcess): Renderer {
  const child = spawned ?? spawn(process.execPath, childArguments(), CHILD_SPAWN_OPTIONS);
  const read = createFrameReader({ maxHeader: 1024 * 1024, maxBody: MAX_REPLY_BODY });
  const replies: Reply[] = [];
  let stderr = '';
  let outOfMemory = false;
  let stopped: RendererStopped | undefined;
  let wake: (() => void) | undefined;

  const stop = (reason: RendererStopped): void => {
    stopped ??= reason;
    child.kill('SIGKILL');
    wake?.();
  };

  child.stdout?.on('data', (chunk: Buffer) => {
    try {
      for (const frame of read(chunk)) replies.push(frame as Reply);
    } catch (err) {
      stop(new RendererStopped('protocol', (err as Error).message));
    }
    wake?.();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    const joined = stderr + chunk.toString('utf8');
    // Tested as it arrives: V8's native stack trace after the message may push it out of the tail.
    outOfMemory ||= /heap out of memory|Reached heap limit|allocation failed/i.test(joined);
    stderr = joined.slice(-STDERR_TAIL);
  });
  child.stdin?.on('error', () => {
    // EPIPE when the child has died; the exit handler reports why.
  });
  child.on('error', (err) =>
    stop(new RendererStopped('crash', `cannot start ${process.execPath}: ${err.message}`)),
  );
  // 'close', not 'exit': by then every reply and all of stderr (an out-of-memory report) have been read.
  child.on('close', (code, signal) => {
    const how = outOfMemory
      ? `ran out of memory (the renderer's heap is limited to ${HEAP_LIMIT_MB} MB)`
      : `the renderer stopped (${signal ?? `exit code ${code}`})${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' ')}` : ''}`;
    stop(new RendererStopped('crash', how));
  });

  // A child taken over may have ended before these listeners were there.
  if (child.exitCode !== null || child.signalCode !== null) {
    stop(
      new RendererStopped(
        'crash',
        `the renderer stopped (${child.signalCode ?? `exit code ${child.exitCode}`})`,
      ),
    );
  }

  return {
    request(message, limitMs) {
      if (stopped) return Promise.reject(stopped);
      child.stdin?.write(encodeFrame(message));
      return new Promise<Reply>((resolve, reject) => {
        const timer = setTimeout(
          () => stop(new RendererStopped('timeout', 'did not answer in time')),
          limitMs,
        );
        wake = () => {
          const reply = replies.shift();
          if (reply === undefined && !stopped) return;
          clearTimeout(timer);
          wake = undefined;
          if (reply !== undefined) resolve(reply);
          else reject(stopped);
        };
        wake();
      });
    },
    post(message) {
      if (!stopped && child.stdin?.writable) child.stdin.write(encodeFrame(message));
    },
    close() {
      child.stdin?.end();
      child.kill('SIGKILL');
    },
  };
}
