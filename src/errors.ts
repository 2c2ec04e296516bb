/**
 * Errors a user can act on carry a stable code, the file/field/path involved and a hint; the CLI prints
 * them without a stack trace. Anything else reaching the top is a bug and is reported as one.
 */
export type ErrorCode =
  | 'EUSAGE' // bad command-line usage
  | 'EMANIFEST' // manifest missing, unreadable or invalid
  | 'ECONFIG' // configuration invalid
  | 'ETEMPLATE' // template failed to render
  | 'EPATH' // a path escapes the image, or is otherwise unusable
  | 'ESOURCE' // the image source (directory, archive) cannot be read
  | 'EEXIST' // an output exists and --force was not given
  | 'EOUTPUT' // writing the output failed
  | 'EPATTERN' // an unsafe or invalid volatile pattern
  | 'EEXTERNAL' // an external program failed
  | 'EINTERRUPTED'
  | 'ENOTSUP';

export class CloudletsError extends Error {
  readonly code: ErrorCode;
  /** The file, field or image path the error is about, when there is one. */
  readonly where: string | undefined;
  readonly hint: string | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { where?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CloudletsError';
    this.code = code;
    this.where = opts.where;
    this.hint = opts.hint;
  }

  /** One line for the terminal: "where: message", then the hint on its own line. */
  format(): string {
    const head = this.where ? `${this.where}: ${this.message}` : this.message;
    return this.hint ? `${head}\nhint: ${this.hint}` : head;
  }
}

export function isCloudletsError(err: unknown): err is CloudletsError {
  return err instanceof CloudletsError;
}
