// Starts the template renderer's child process for `tar`, before the rest of the program is even
// evaluated: main.ts imports this module first. Booting that child (a second Node) is what an archive
// waits for before its first byte when the image has templates.
// The command's loader (scripts/cli-loader.cjs) has usually spawned it already, before compiling the
// program, and sent it ejs: it is taken over here. A child no command takes exits when this process does.
import type { ChildProcess } from 'node:child_process';
import { prestartRenderer } from '../templates/index.js';

/** What the loader leaves for this module (the key is shared with scripts/cli-loader.cjs). */
interface LoaderStart {
  /** The command exports an image. */
  exporting: boolean;
  /** The command needs the renderer before its first entry goes out (tar): it is started at once. */
  renderEarly?: boolean;
  /** The renderer's child, spawned and sent `prepare` by the loader (absent when it could not). */
  child?: ChildProcess;
}

const start = (globalThis as Record<symbol, LoaderStart | undefined>)[Symbol.for('cloudlets.renderer')];
if (start?.child) prestartRenderer({ child: start.child, prepared: true });
else if (start?.renderEarly) prestartRenderer();
