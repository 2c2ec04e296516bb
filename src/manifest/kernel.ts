// Entry point requirement on the kernel version: a node-semver range against versions such as
// "5.10.0-28-amd64", which are not semver and are coerced to their first three numbers.
import semver from 'semver';

/** True when `kernelVersion` (as `uname -r` prints it) satisfies `range` (e.g. ">=2.6.32"). */
export function kernelSatisfies(kernelVersion: string, range: string): boolean {
  const version = semver.coerce(kernelVersion);
  if (version === null || semver.validRange(range) === null) return false;
  return semver.satisfies(version, range);
}
