// `-e/--env` and `-v/--volumes` entries. Unlike the Go worker (kong splits
// list flags on commas), an entry is never split: `-e A=b,c=d` sets A to
// "b,c=d", and `-v /a:/b:ro,z` is one volume. Repeat the flag for more entries.
import { ConfigError } from './errors.js';
import { volumeSpecProblem } from './volume-spec.js';

const ENV_FORMAT = "use -e KEY=VALUE, or -e KEY to pass the variable through from the worker's environment";

/**
 * Resolves `-e` entries in order (a later duplicate wins): `KEY=VALUE` sets VALUE
 * (which may contain `=` and `,`), a bare `KEY` copies the host's value ("" if unset).
 */
export function parseEnvFlags(entries: readonly string[], hostEnv: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    if (entry === '') throw new ConfigError(`invalid --env flag: empty value (${ENV_FORMAT})`);
    const equals = entry.indexOf('=');
    const key = equals === -1 ? entry : entry.slice(0, equals);
    if (key === '') throw new ConfigError(`invalid --env flag: missing key in ${JSON.stringify(entry)} (${ENV_FORMAT})`);
    if (/[ \t]/.test(key)) {
      throw new ConfigError(
        `invalid --env flag: key contains whitespace in ${JSON.stringify(entry)} (${ENV_FORMAT}; quote the whole entry if the value has spaces)`,
      );
    }
    const value = equals === -1 ? (hostEnv[key] ?? '') : entry.slice(equals + 1);
    Object.defineProperty(env, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return env;
}

/** Checks `-v` entries and returns them unchanged, in order. */
export function parseVolumeFlags(entries: readonly string[]): string[] {
  for (const entry of entries) {
    const problem = volumeSpecProblem(entry);
    if (problem) throw new ConfigError(`invalid --volumes flag: ${JSON.stringify(entry)} ${problem}`);
  }
  return [...entries];
}
