// Names and patterns of the manifest format shared by the schema source (schema.ts) and the runtime.
export const MANIFEST_SCHEMA_ID = 'urn:cloudlets:schema:manifest:1';
export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/**
 * An absolute image path without a `..` component or a NUL byte. Ajv compiles it with the `u` flag; the
 * same rule is checked in code with a clearer message (validate.ts), this copy documents it for editors.
 */
export const IMAGE_PATH_PATTERN = '^(?![\\s\\S]*/\\.\\.(?:/|$))/[^\\u0000]*$';

export const ENTRYPOINT_TYPES = ['kernel', 'init', 'chroot'] as const;
