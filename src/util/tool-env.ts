/**
 * The environment of a host tool whose output we parse or whose effect we rely on (find, getfattr, dd):
 * the caller's PATH, nothing else, and the C locale, so messages and formats are the same everywhere.
 * Read at each call: PATH may change meanwhile (tests take a tool away that way).
 */
export function plainToolEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' };
}
