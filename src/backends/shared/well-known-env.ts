// The variables a worker sets itself in the environments it owns (setup and
// teardown hooks, dispatch and cancel commands, a Kubernetes or Docker task):
// each OZ_<NAME> comes with its WARP_<NAME> alias, same value, OZ_ first, as
// the Go worker writes them (scripts written for either name keep working).
// Callers lay these over the operator's environment, so they win.

/** The suffixes of the worker's own variables. */
export type WellKnownName = 'RUN_ID' | 'EXECUTION_ID' | 'WORKER_BACKEND' | 'WORKSPACE_ROOT' | 'ENVIRONMENT_FILE' | 'SERVER_ROOT_URL' | 'DOCKER_IMAGE';

export const WELL_KNOWN_PREFIXES = ['OZ_', 'WARP_'] as const;

/** `[OZ_<name>, value], [WARP_<name>, value]` for each variable, in the order given. */
export function wellKnownEnv(variables: ReadonlyArray<readonly [WellKnownName, string]>): Array<[string, string]> {
  return variables.flatMap(([name, value]): Array<[string, string]> => WELL_KNOWN_PREFIXES.map((prefix) => [`${prefix}${name}`, value]));
}

/** The same as `KEY=VALUE` entries. */
export function wellKnownEntries(variables: ReadonlyArray<readonly [WellKnownName, string]>): string[] {
  return wellKnownEnv(variables).map(([name, value]) => `${name}=${value}`);
}
