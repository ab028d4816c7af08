// Takes the worker's API key out of its own environment once it has been read.
// Every process of the same user (an agent, a setup script) can read another's
// initial environment block through /proc/<pid>/environ, and that block is
// fixed at exec time: deleting the variable from `process.env` leaves its bytes
// there. So on Linux the entry is also overwritten in place, through
// /proc/self/mem — a few system calls, where starting the worker a second time
// without the variable (the other way to get an environment block without the
// key) would cost a second Node.js start-up.
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { errorMessage } from '../errors/error-message.js';

export const API_KEY_VARIABLE = 'WARP_API_KEY';

/** The names in `env` that hold the key: WARP_API_KEY, and any other variable set to the key itself. */
export function variablesHoldingKey(env: Readonly<Record<string, string | undefined>>, key: string): string[] {
  return Object.keys(env).filter((name) => name === API_KEY_VARIABLE || (key !== '' && env[name] === key));
}

/** Byte ranges of the entries `NAME=…` in a NUL-separated environment block whose name is listed. */
export function entryRanges(block: Buffer, names: ReadonlySet<string>): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (let start = 0; start < block.length; ) {
    let end = block.indexOf(0, start);
    if (end < 0) end = block.length;
    const equals = block.indexOf(0x3d, start);
    if (equals > start && equals < end && names.has(block.toString('utf8', start, equals))) ranges.push([start, end]);
    start = end + 1;
  }
  return ranges;
}

/** Where the kernel keeps this process's initial environment: fields 50 and 51 of /proc/self/stat. */
function environmentBlock(): { start: number; end: number } {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[50 - 3]);
  const end = Number(fields[51 - 3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start <= 0 || end <= start) {
    throw new Error('the kernel does not say where the environment is (/proc/self/stat)');
  }
  return { start, end };
}

function overwriteInPlace(names: ReadonlySet<string>): void {
  const { start, end } = environmentBlock();
  const fd = openSync('/proc/self/mem', 'r+');
  try {
    const block = Buffer.alloc(end - start);
    readSync(fd, block, 0, block.length, start);
    for (const [from, to] of entryRanges(block, names)) {
      writeSync(fd, Buffer.alloc(to - from), 0, to - from, start + from);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Removes the variables holding `key` from `process.env` and, on Linux, from
 * the initial environment block. Returns a warning when the key stays readable
 * there (another platform, or a kernel that refuses the write).
 */
export function concealApiKey(key: string, platform: NodeJS.Platform = process.platform): string | undefined {
  const names = variablesHoldingKey(process.env, key).filter((name) => process.env[name] !== undefined && process.env[name] !== '');
  if (names.length === 0) return undefined;
  for (const name of names) delete process.env[name];
  const advice =
    'processes of the same user, agents included, can read it from there; use --api-key-file, or run agents as another user (backend.direct.run_as_user)';
  if (platform !== 'linux') return `${names.join(', ')} stays in this process's environment on ${platform}: ${advice}`;
  try {
    overwriteInPlace(new Set(names));
    return undefined;
  } catch (error) {
    return `could not remove ${names.join(', ')} from this process's environment block (${errorMessage(error)}): ${advice}`;
  }
}

/** The warning for a key given on the command line. */
export const COMMAND_LINE_KEY_WARNING =
  '--api-key puts the API key on the command line, where every user of this machine can read it (ps); set WARP_API_KEY or use --api-key-file instead';
