// A child process's scheduling priority, for host tools whose work the command needs only later.
import type { ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';

/**
 * Sets the nice value of a process just spawned (exec keeps it). Best effort: one that has already
 * ended, or a system that does not allow it, leaves the process at this one's priority.
 */
export function setChildNice(child: ChildProcess, nice: number): void {
  if (child.pid === undefined) return;
  try {
    setPriority(child.pid, nice);
  } catch {
    // It runs at this process's priority.
  }
}
