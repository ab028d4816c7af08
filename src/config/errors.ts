// A configuration or usage problem the user must fix before the worker can
// start: flags, config file, environment. The CLI prints the message as one
// line and exits with `exitCode`; nothing has been started yet.
import { errorMessage } from '../errors/error-message.js';

export class ConfigError extends Error {
  /** Process exit status for configuration problems (runtime failures use 1). */
  readonly exitCode = 2;

  constructor(message: string) {
    // One line, whatever the cause: embedded newlines would break the CLI's single-line error.
    super(message.replace(/\s*\n\s*/g, ' '));
    this.name = 'ConfigError';
  }
}

/** Why a file could not be read, in words (for "could not read <file>: <why>"). */
export function describeReadError(error: unknown): string {
  switch ((error as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory, not a file';
    default:
      return errorMessage(error);
  }
}
