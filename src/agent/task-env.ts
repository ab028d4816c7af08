// The task environment every backend starts from, as ordered KEY=VALUE entries.

export interface CommonEnvInput {
  /** `task.id` (the task object's id). */
  taskObjectId: string;
  serverRootUrl: string;
  envVars: Record<string, string> | undefined;
}

/** The entries the worker itself sets, whatever the server sent: nothing secret in them. */
export function workerTaskEnv(input: Omit<CommonEnvInput, 'envVars'>): string[] {
  const env = [`TASK_ID=${input.taskObjectId}`, 'GIT_TERMINAL_PROMPT=0', 'GH_PROMPT_DISABLED=1'];
  if (input.serverRootUrl !== '') env.push(`WARP_SERVER_ROOT_URL=${input.serverRootUrl}`);
  return env;
}

export function commonTaskEnv(input: CommonEnvInput): string[] {
  return [...workerTaskEnv(input), ...Object.entries(input.envVars ?? {}).map(([key, value]) => `${key}=${value}`)];
}

/** Splits an entry at its first `=`; undefined for entries without one or with an empty key. */
export function splitEnvEntry(entry: string): [string, string] | undefined {
  const at = entry.indexOf('=');
  if (at <= 0) return undefined;
  return [entry.slice(0, at), entry.slice(at + 1)];
}

/** Later entries win; keys keep the position of their first appearance. */
export function dedupeEnv(entries: readonly string[]): string[] {
  return Object.entries(envToMap(entries)).map(([k, v]) => `${k}=${v}`);
}

export function envToMap(entries: readonly string[]): Record<string, string> {
  // A Map keeps first-appearance order and treats `__proto__` as an ordinary key.
  const map = new Map<string, string>();
  for (const entry of entries) {
    const pair = splitEnvEntry(entry);
    if (pair) map.set(pair[0], pair[1]);
  }
  return Object.fromEntries(map);
}
