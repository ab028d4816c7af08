// The OZ_WORKER_* variables the worker reads (and the Go worker's
// OZ_COLLECT_TASK_LOGS), parsed here and nowhere else, by
// one rule: an empty value counts as unset; a number is a whole count of
// milliseconds; a flag is 1/true or 0/false. Anything else is a ConfigError
// that names the variable, instead of a value silently ignored.
import { ConfigError } from './errors.js';

/** Set by `oz-worker local` on its workers: exit when the IPC channel to the parent closes. */
export const EXIT_WITH_PARENT_ENV = 'OZ_WORKER_EXIT_WITH_PARENT';
export const HEALTH_LISTEN_ENV = 'OZ_WORKER_HEALTH_LISTEN';
export const STATE_DIR_ENV = 'OZ_WORKER_STATE_DIR';
/** The Go worker's variable behind `--collect-task-logs`. */
export const COLLECT_TASK_LOGS_ENV = 'OZ_COLLECT_TASK_LOGS';

/** Connection timings shortened through the environment (tests, the benchmark); absent: the connection's defaults. */
export interface ConnectionTuning {
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  stableAfterMs?: number;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

export interface OzWorkerEnv {
  /** `OZ_WORKER_HEALTH_LISTEN`, the default of `--health-listen`. */
  healthListen?: string;
  /** `OZ_WORKER_STATE_DIR`, the default of `--state-dir`. */
  stateDir?: string;
  /** `OZ_WORKER_EXIT_WITH_PARENT`. */
  exitWithParent: boolean;
  /** `OZ_COLLECT_TASK_LOGS`, the default of `--collect-task-logs`. */
  collectTaskLogs?: boolean;
  connectionTuning: ConnectionTuning;
}

type Env = Readonly<Record<string, string | undefined>>;

export const TUNING_VARIABLES: ReadonlyArray<[keyof ConnectionTuning, string]> = [
  ['pingIntervalMs', 'OZ_WORKER_PING_INTERVAL_MS'],
  ['pongTimeoutMs', 'OZ_WORKER_PONG_TIMEOUT_MS'],
  ['stableAfterMs', 'OZ_WORKER_STABLE_AFTER_MS'],
  ['reconnectInitialMs', 'OZ_WORKER_RECONNECT_INITIAL_MS'],
  ['reconnectMaxMs', 'OZ_WORKER_RECONNECT_MAX_MS'],
];

export function readOzWorkerEnv(env: Env): OzWorkerEnv {
  const connectionTuning: ConnectionTuning = {};
  for (const [key, name] of TUNING_VARIABLES) {
    const ms = envMilliseconds(env, name);
    if (ms !== undefined) connectionTuning[key] = ms;
  }
  const healthListen = envText(env, HEALTH_LISTEN_ENV);
  const stateDir = envText(env, STATE_DIR_ENV);
  const collectTaskLogs = envFlag(env, COLLECT_TASK_LOGS_ENV);
  return {
    ...(healthListen === undefined ? {} : { healthListen }),
    ...(stateDir === undefined ? {} : { stateDir }),
    ...(collectTaskLogs === undefined ? {} : { collectTaskLogs }),
    exitWithParent: envFlag(env, EXIT_WITH_PARENT_ENV) ?? false,
    connectionTuning,
  };
}

export function envText(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function envMilliseconds(env: Env, name: string): number | undefined {
  const text = envText(env, name);
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new ConfigError(`invalid ${name} ${JSON.stringify(text)}: use a whole number of milliseconds, e.g. 5000`);
  return value;
}

export function envFlag(env: Env, name: string): boolean | undefined {
  const text = envText(env, name);
  if (text === undefined) return undefined;
  const lower = text.toLowerCase();
  if (lower === '1' || lower === 'true') return true;
  if (lower === '0' || lower === 'false') return false;
  throw new ConfigError(`invalid ${name} ${JSON.stringify(text)}: use 1 or true to turn it on, 0 or false to turn it off`);
}
