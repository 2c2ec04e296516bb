// CONTRACT STUB (owner: templates helper). Signatures are fixed; bodies to be written.

import type { Configuration } from '../config/index.js';
import type { Manifest } from '../manifest/index.js';

export interface TemplateInput {
  /** Image path, e.g. `/etc/hostname`: used for includes and named in errors. */
  path: string;
  source: Buffer;
}

export interface RenderOptions {
  templates: TemplateInput[];
  /** Reads an included file by image path, inside the image only (ImageSource.readFile). */
  readInclude: (imagePath: string) => Promise<Buffer | undefined>;
  configuration: Configuration;
  manifest: Manifest;
  /** Per-template time limit in milliseconds; default 10 000. */
  timeoutMs?: number;
}

/** Renders every template in isolation; returns image path → rendered bytes. */
export async function renderTemplates(_opts: RenderOptions): Promise<Map<string, Buffer>> {
  throw new Error('not implemented');
}
