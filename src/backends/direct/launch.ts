// What the direct backend launches for a task, as pure builders: the
// workspace (refusing task ids that would leave the workspace root), the
// environment the worker passes on, and the agent's program, argv, working
// directory and environment. The backend runs exactly what these return, and
// `oz-worker plan` prints it.
import { resolve } from 'node:path';
import type { RunAsUser } from '../../config/users.js';
import type { DirectBackendConfig } from '../../config/worker-config.js';
import type { TaskParams } from '../../task/contract.js';
import type { EnvMap } from '../shared/env.js';
import { agentEnv, planWorkspace, taskEnv, validateTaskIdForPath, workspaceMode, type WorkspaceMode, type WorkspacePlan } from './workspace.js';

// Setup's and teardown's environments, as the backend builds them (`oz-worker plan` shows them too).
export { setupEnv, teardownEnv } from './workspace.js';

/** Target-dir mode: the temporary directory holding a task's git config is `<TMPDIR>/<this><random>`. */
export const GITCONFIG_TEMP_PREFIX = 'oz-gitconfig-';
/** The env file setup writes to (`$OZ_ENVIRONMENT_FILE`) is `<workspace>/<this><random>`. */
export const ENV_FILE_PREFIX = 'oz-env-';

/** The configured workspace mode, its directory absolute (a relative one means the worker's directory). */
export function resolvedWorkspaceMode(direct: DirectBackendConfig, defaultRoot: string): WorkspaceMode {
  const mode = workspaceMode(direct, defaultRoot);
  return mode.kind === 'target-dir' ? { kind: 'target-dir', dir: resolve(mode.dir) } : { kind: 'per-task', root: resolve(mode.root) };
}

/**
 * Where a task runs. A task id that is not one plain directory name (`..`,
 * `../escape`, `a/../../escape`, `/abs/path`) would put the workspace outside
 * the root: refused with a TaskFailure (workspace_setup), as the Go worker does.
 */
export function taskWorkspace(mode: WorkspaceMode, taskId: string): WorkspacePlan {
  validateTaskIdForPath(taskId);
  return planWorkspace(mode, taskId);
}

/** The worker's environment as setup, agent and teardown see it: with `run_as_user`, that user's HOME and name. */
export function directHostEnv(hostEnv: NodeJS.ProcessEnv, runAs: RunAsUser | undefined): NodeJS.ProcessEnv {
  return runAs ? { ...hostEnv, HOME: runAs.home, USER: runAs.name, LOGNAME: runAs.name } : hostEnv;
}

export interface TaskEnvironmentInput {
  params: Pick<TaskParams, 'env' | 'task'>;
  /** The operator's task environment (YAML `environment` overlaid by `-e`). */
  operatorEnv: Readonly<Record<string, string>>;
  workspace: WorkspacePlan;
  gitConfigPath: string;
}

/** The task's own variables (before setup's env file): the harness directories and git config win over `-e`. */
export function directTaskEnv(input: TaskEnvironmentInput): EnvMap {
  const { params, operatorEnv, workspace, gitConfigPath } = input;
  return taskEnv({ common: params.env, operatorEnv, task: params.task, workspaceDir: workspace.dir, gitConfigPath });
}

export interface AgentLaunchInput {
  /** The oz CLI as resolved at start-up. */
  ozPath: string;
  params: Pick<TaskParams, 'args'>;
  workspace: WorkspacePlan;
  hostEnv: Readonly<Record<string, string | undefined>>;
  taskEnv: EnvMap;
  /** Variables the setup command wrote to its env file (none without a setup command). */
  envFileVars: ReadonlyMap<string, string>;
  gitConfigPath: string;
}

export interface AgentLaunch {
  file: string;
  args: readonly string[];
  cwd: string;
  env: EnvMap;
}

/** The agent process: the oz CLI with the task's argv, in the workspace, with only the variables it needs. */
export function agentLaunch(input: AgentLaunchInput): AgentLaunch {
  const { ozPath, params, workspace, hostEnv, envFileVars, gitConfigPath } = input;
  return { file: ozPath, args: params.args, cwd: workspace.dir, env: agentEnv({ hostEnv, taskEnv: input.taskEnv, envFileVars, gitConfigPath }) };
}
