/**
 * The manifest format, written once as code. `buildManifestJsonSchema()` is the JSON Schema (draft
 * 2020-12) committed as schema/manifest.schema.json (`npm run gen:schema`; a test fails when the two drift
 * apart). The runtime reads the committed file (schema-json.ts), so only that test imports this module.
 */
import { type TSchema, Type } from '@sinclair/typebox';
import {
  ENTRYPOINT_TYPES,
  IMAGE_PATH_PATTERN,
  JSON_SCHEMA_DIALECT,
  MANIFEST_SCHEMA_ID,
} from './constants.js';

const imagePath = (description: string, examples: string[]) =>
  Type.String({ pattern: IMAGE_PATH_PATTERN, description, examples });

const stringEnum = <T extends string>(values: readonly T[], description: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], description });

export const RequirementsSchema = Type.Object(
  {
    arch: Type.Optional(
      Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1 })], {
        description: 'Architecture(s) this entry point runs on, as `uname -m` names them.',
        examples: ['x86_64', ['x86_64', 'i386']],
      }),
    ),
    kernel: Type.Optional(
      Type.String({
        description:
          'A version range (node-semver syntax) the running kernel must satisfy; kernel versions such as ' +
          '"5.10.0-28-amd64" are coerced to 5.10.0 before comparing.',
        examples: ['>=2.6.32', '>=5.4 <7'],
      }),
    ),
    commands: Type.Optional(
      Type.Array(Type.String(), {
        description: 'Commands that must be run on entry for the image to function properly.',
        examples: [['mount -t proc proc /proc']],
      }),
    ),
  },
  { additionalProperties: false, description: 'What the entry point needs from its host.' },
);

export const EntryPointSchema = Type.Object(
  {
    type: stringEnum(
      ENTRYPOINT_TYPES,
      'kernel: receives control from a bootloader; init: from a kernel; chroot: from a shell.',
    ),
    path: imagePath('Image path of the kernel, the init program, or the program run in a chroot.', [
      '/boot/vmlinuz-6.1.0-13-amd64',
      '/sbin/init',
      '/bin/sh',
    ]),
    initrd: Type.Optional(
      imagePath('Kernel entry points only: image path of the initial ramdisk.', [
        '/boot/initrd.img-6.1.0-13-amd64',
      ]),
    ),
    cmdline: Type.Optional(
      Type.String({
        description: 'Kernel entry points only: the kernel command line.',
        examples: ['console=tty0 console=ttyS0'],
      }),
    ),
    command: Type.Optional(
      Type.Array(Type.String(), {
        description: 'init and chroot entry points only: the argument vector, program first.',
        examples: [['/bin/sh', '-l']],
      }),
    ),
    requires: Type.Optional(RequirementsSchema),
  },
  {
    additionalProperties: false,
    description: 'A way the image receives control of the execution flow.',
  },
);

export const ManifestSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'Short name of the image.', examples: ['debian-12'] })),
    description: Type.Optional(
      Type.String({ description: 'What the image is.', examples: ['Debian 12 base system for x86_64'] }),
    ),
    author: Type.Optional(
      Type.String({ description: 'Who made it.', examples: ['Jane Doe <jane@example.org>'] }),
    ),
    version: Type.Optional(
      Type.String({ description: 'Version of the image (free form).', examples: ['1.0.0'] }),
    ),
    arch: Type.Optional(
      Type.String({
        description: 'Architecture of the image, as `uname -m` names it.',
        examples: ['x86_64', 'i386', 'aarch64'],
      }),
    ),
    args: Type.Unsafe<Record<string, unknown>>({
      type: 'object',
      default: {},
      description:
        'The user arguments a configuration supplies: a JSON Schema of type object, or the shorthand map ' +
        '{name: property schema}, which means {type: "object", properties: {...}}. `default` is allowed.',
      examples: [
        { hostname: { type: 'string', default: 'debian-host' } },
        { type: 'object', properties: { port: { type: 'integer', default: 80 } }, required: ['port'] },
      ],
    }),
    templates: Type.Array(imagePath('A template file.', ['/etc/hostname']), {
      default: [],
      description: 'Image paths of files rendered as EJS templates with the configuration (exact paths).',
      examples: [['/etc/hostname', '/etc/hosts']],
    }),
    persistent: Type.Array(imagePath('A persistent path.', ['/var/lib']), {
      default: [],
      description: 'Image paths holding persistent data; a path covers itself and everything below it.',
      examples: [['/var/lib', '/var/log', '/home']],
    }),
    volatile: Type.Array(Type.String({ description: 'A JavaScript regular expression.' }), {
      default: [],
      description:
        'Regular expressions (JavaScript syntax) matched from the start of an image path; matching paths ' +
        'hold volatile data and are left out of exports.',
      examples: [['/tmp/.+', '/var/tmp/.+', '/var/log/(?!apt).+']],
    }),
    entrypoints: Type.Array(EntryPointSchema, {
      default: [],
      description: 'How the image can receive control: kernel, init or chroot entry points.',
    }),
  },
  {
    // Unknown top-level fields are allowed by the schema for forward compatibility; the loader warns about
    // them, or refuses them in strict mode.
    additionalProperties: true,
    title: 'cloudlets manifest',
    description: 'Metadata of a cloudlets image, stored as JSON at /.cloudlet/manifest or off-band.',
  },
);

/** TypeBox marks its schemas with symbol keys; JSON does not carry them, so a JSON round trip strips them. */
function plain(schema: TSchema): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

/** The JSON Schema generated from the TypeBox source. */
export function buildManifestJsonSchema(): Record<string, unknown> {
  return { $schema: JSON_SCHEMA_DIALECT, $id: MANIFEST_SCHEMA_ID, ...plain(ManifestSchema) };
}
