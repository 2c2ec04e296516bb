// `cloudlets specs`: the manifest's JSON Schema (draft 2020-12), as committed in schema/manifest.schema.json.
import { manifestJsonSchema } from '../../manifest/schema-json.js';
import { type CliContext, writeJson } from '../context.js';

export async function run(ctx: CliContext): Promise<void> {
  writeJson(ctx, manifestJsonSchema());
}
