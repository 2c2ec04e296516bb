import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

let cached: Promise<string> | undefined;

/**
 * The same text, put into the command's bundle when it is built (scripts/bundle.mjs): finding the file
 * through the package's resolution costs a command ~10 ms (measured) on the way to its first template.
 * Undefined in the library, which reads the file.
 */
declare const __CLOUDLETS_EJS_BUNDLE__: string | undefined;

/**
 * The text of ejs's self-contained browser bundle (`ejs/ejs.js`, same version as the pinned package).
 * It is evaluated inside each template's context, so the compiled template is a function of the
 * sandbox realm. The package's `exports` map hides the file, so it is found next to the CommonJS
 * entry point (`lib/cjs/ejs.js`, two levels below the package root).
 */
export function ejsBundleSource(): Promise<string> {
  cached ??= (async () => {
    if (typeof __CLOUDLETS_EJS_BUNDLE__ === 'string') return __CLOUDLETS_EJS_BUNDLE__;
    const entry = createRequire(import.meta.url).resolve('ejs');
    return readFile(join(dirname(entry), '..', '..', 'ejs.js'), 'utf8');
  })();
  return cached;
}
