// Entry point requirement on the kernel version: a node-semver range against versions such as
// "5.10.0-28-amd64", which are not semver and are coerced to their first three numbers.
import { createRequire } from 'node:module';

// semver is loaded only when a manifest has a kernel requirement: loading it costs ~20 ms of start-up.
const require = createRequire(import.meta.url);
let semverModule: typeof import('semver') | undefined;
function semver(): typeof import('semver') {
  semverModule ??= require('semver') as typeof import('semver');
  return semverModule;
}

/** True when `range` is a node-semver range (">=2.6.32"). */
export function isKernelRange(range: string): boolean {
  return semver().validRange(range) !== null;
}

/** True when `kernelVersion` (as `uname -r` prints it) satisfies `range` (e.g. ">=2.6.32"). */
export function kernelSatisfies(kernelVersion: string, range: string): boolean {
  const version = semver().coerce(kernelVersion);
  if (version === null || !isKernelRange(range)) return false;
  return semver().satisfies(version, range);
}
