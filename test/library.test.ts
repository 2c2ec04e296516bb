import { spawnSync } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { exportEntries, openImage, validateConfiguration, writeTar } from '../src/index.js';
import { EXAMPLE } from './helpers.js';

describe('the library API, as the README shows it', () => {
  it('exports a configured image as a tar stream', async () => {
    const image = await openImage(EXAMPLE);
    const configuration = validateConfiguration(image.manifest, { args: { hostname: 'web1' } });
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (c: Buffer) => chunks.push(c));
    await writeTar(await exportEntries(image, { configuration }), out);
    await image.source.close?.();
    const hostname = spawnSync('tar', ['-xOf', '-', './etc/hostname'], { input: Buffer.concat(chunks) });
    expect(hostname.stdout.toString()).toBe('web1\n');
  });
});
