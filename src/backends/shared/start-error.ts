// The text for a process a backend could not start, worded as the Go worker's
// exec package words it (the direct and command backends both report it).
import { getSystemErrorMessage } from 'node:util';

/** Go's exec error text for a process that could not be started: `fork/exec <path>: <reason>`. */
export function startErrorText(file: string, error: Error): string {
  const errno = (error as NodeJS.ErrnoException).errno;
  if (typeof errno !== 'number') return error.message;
  const reason = getSystemErrorMessage(errno);
  return `fork/exec ${file}: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
}
