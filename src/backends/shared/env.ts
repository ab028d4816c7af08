// The environment of a process a backend starts: ordered maps merged layer by
// layer, the worker's own credential kept out, and the final object for spawn.
// Shared by the backends that start local processes (direct, command).
/** An ordered environment: later layers win per key, a key keeps its first position. */
export type EnvMap = Map<string, string>;

export function mergeEnv(...layers: Iterable<readonly [string, string]>[]): EnvMap {
  const merged: EnvMap = new Map();
  for (const layer of layers) for (const [key, value] of layer) merged.set(key, value);
  return merged;
}

/** Variables that carry the worker's own credential. */
const WORKER_CREDENTIAL_VARIABLES = new Set(['WARP_API_KEY', 'WARP_API_KEY_FILE']);

/**
 * The worker's environment without its credential: the key variables, and any
 * other variable that holds the key itself (however it was configured).
 */
export function workerEnvWithoutCredentials(hostEnv: Readonly<Record<string, string | undefined>>, apiKey: string): EnvMap {
  const env: EnvMap = new Map();
  for (const [key, value] of Object.entries(hostEnv)) {
    if (value === undefined || WORKER_CREDENTIAL_VARIABLES.has(key)) continue;
    if (apiKey !== '' && value === apiKey) continue;
    env.set(key, value);
  }
  return env;
}

/**
 * The environment object for spawning. Entries the OS cannot carry (empty
 * names, `=` in a name, NUL anywhere) are left out and their names reported.
 */
export function toProcessEnv(env: EnvMap): { env: Record<string, string>; dropped: string[] } {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const dropped: string[] = [];
  for (const [key, value] of env) {
    if (key === '' || key.includes('=') || key.includes('\0') || value.includes('\0')) dropped.push(key);
    else out[key] = value;
  }
  return { env: out, dropped };
}
