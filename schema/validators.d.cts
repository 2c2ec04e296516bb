import type { ErrorObject } from 'ajv/dist/2020.js';

type PrecompiledValidator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

export declare function manifestValidator(): PrecompiledValidator;
export declare function metaSchemaValidator(): PrecompiledValidator;
