// Pure decisions of the direct backend: which task ids are safe directory
// names, where a task runs, and exactly which environment each process gets.
import { join } from 'node:path';
import { goTrim } from '../../agent/go-trim.js';
import { splitEnvEntry } from '../../agent/task-env.js';
import type { DirectBackendConfig } from '../../config/worker-config.js';
import type { Task } from '../../protocol/messages.js';
import { TaskFailure } from '../../task/failure.js';
import { mergeEnv, workerEnvWithoutCredentials, type EnvMap } from '../shared/env.js';
import { wellKnownEnv } from '../shared/well-known-env.js';

/** Refuses ids that are not one plain path component (path traversal, absolute paths). */
export function validateTaskIdForPath(taskId: string): void {
  const problem = taskIdProblem(taskId);
  if (problem === undefined) return;
  throw new TaskFailure(
    'workspace_setup',
    `invalid task ID for workspace path: invalid task ID ${JSON.stringify(taskId)}: ${problem}; it must be a single directory name`,
  );
}

function taskIdProblem(taskId: string): string | undefined {
  if (taskId === '') return 'it is empty';
  if (taskId === '.' || taskId === '..') return 'it names the current or parent directory';
  if (taskId.includes('/') || taskId.includes('\\')) return 'it contains a path separator ("/" or "\\")';
  if (taskId.includes('\0')) return 'it contains a NUL character';
  return undefined;
}

export type WorkspaceMode =
  /** One directory per task under the root, removed after the task (unless cleanup is off). */
  | { kind: 'per-task'; root: string }
  /** Every task runs in the operator's directory, which is never removed. */
  | { kind: 'target-dir'; dir: string };

export function workspaceMode(direct: DirectBackendConfig, defaultRoot: string): WorkspaceMode {
  if (direct.targetDir !== '') return { kind: 'target-dir', dir: direct.targetDir };
  return { kind: 'per-task', root: direct.workspaceRoot || defaultRoot };
}

export interface WorkspacePlan {
  /** The working directory of setup, agent and teardown. */
  dir: string;
  /** Whether the directory belongs to this task (created for it, removed after it). */
  perTask: boolean;
  /**
   * GIT_CONFIG_GLOBAL inside the workspace; undefined in target-dir mode, where
   * a fresh temporary directory outside the operator's checkout holds it.
   */
  gitConfigPath: string | undefined;
}

/** Where a (validated) task runs. */
export function planWorkspace(mode: WorkspaceMode, taskId: string): WorkspacePlan {
  if (mode.kind === 'target-dir') return { dir: mode.dir, perTask: false, gitConfigPath: undefined };
  const dir = join(mode.root, taskId);
  return { dir, perTask: true, gitConfigPath: join(dir, '.gitconfig') };
}

/** `KEY=VALUE` entries as pairs (split at the first `=`; entries without a key are skipped). */
export function envListEntries(list: readonly string[]): Array<[string, string]> {
  return list.map(splitEnvEntry).filter((pair): pair is [string, string] => pair !== undefined);
}

const HARNESS_DIRS: Record<string, { variable: string; dir: string }> = {
  claude: { variable: 'CLAUDE_CONFIG_DIR', dir: '.claude' },
  codex: { variable: 'CODEX_HOME', dir: '.codex' },
};

/** Third-party harnesses keep their state in the workspace, so concurrent tasks do not share it. */
export function harnessEnv(task: Task, workspaceDir: string): Array<[string, string]> {
  const type = task.agent_config_snapshot?.harness?.type;
  if (type === undefined) return [];
  const name = goTrim(type);
  if (!Object.hasOwn(HARNESS_DIRS, name)) return [];
  const harness = HARNESS_DIRS[name]!;
  return [[harness.variable, join(workspaceDir, harness.dir)]];
}

export interface TaskEnvInput {
  /** The common task env (`TaskParams.env`). */
  common: readonly string[];
  /** The operator's env for every task (YAML `environment` overlaid by `-e`). */
  operatorEnv: Readonly<Record<string, string>>;
  task: Task;
  workspaceDir: string;
  gitConfigPath: string;
}

/** The task's own variables, before the setup command's env file: common env, operator env, harness dirs, git config. */
export function taskEnv(input: TaskEnvInput): EnvMap {
  return mergeEnv(envListEntries(input.common), Object.entries(input.operatorEnv), harnessEnv(input.task, input.workspaceDir), [
    ['GIT_CONFIG_GLOBAL', input.gitConfigPath],
  ]);
}

/** Host variables the agent inherits; nothing else from the worker's environment reaches it. */
export const AGENT_HOST_VARIABLES = ['HOME', 'TMPDIR', 'PATH'] as const;

export interface AgentEnvInput {
  hostEnv: Readonly<Record<string, string | undefined>>;
  taskEnv: EnvMap;
  /** Variables the setup command wrote to its env file. */
  envFileVars: ReadonlyMap<string, string>;
  gitConfigPath: string;
}

/** HOME/TMPDIR/PATH from the host, then the task env, then the env file; the git config cannot be redirected. */
export function agentEnv(input: AgentEnvInput): EnvMap {
  const host = AGENT_HOST_VARIABLES.flatMap((key): Array<[string, string]> => {
    const value = input.hostEnv[key];
    return value === undefined ? [] : [[key, value]];
  });
  return mergeEnv(host, input.taskEnv, input.envFileVars, [['GIT_CONFIG_GLOBAL', input.gitConfigPath]]);
}

export interface SetupEnvInput {
  hostEnv: Readonly<Record<string, string | undefined>>;
  apiKey: string;
  taskEnv: EnvMap;
  workspaceDir: string;
  taskId: string;
  envFilePath: string;
}

/** Setup: the worker's environment (minus its credential), the task env, then the OZ_ and WARP_ contract variables. */
export function setupEnv(input: SetupEnvInput): EnvMap {
  return mergeEnv(
    workerEnvWithoutCredentials(input.hostEnv, input.apiKey),
    input.taskEnv,
    wellKnownEnv([
      ['WORKSPACE_ROOT', input.workspaceDir],
      ['WORKER_BACKEND', 'direct'],
      ['RUN_ID', input.taskId],
      ['ENVIRONMENT_FILE', input.envFilePath],
    ]),
  );
}

export interface TeardownEnvInput {
  hostEnv: Readonly<Record<string, string | undefined>>;
  apiKey: string;
  workspaceDir: string;
  gitConfigPath: string;
  taskId: string;
}

/** Teardown: the worker's environment (minus its credential) and the OZ_ and WARP_ variables; no task env. */
export function teardownEnv(input: TeardownEnvInput): EnvMap {
  return mergeEnv(
    workerEnvWithoutCredentials(input.hostEnv, input.apiKey),
    wellKnownEnv([['WORKSPACE_ROOT', input.workspaceDir]]),
    [['GIT_CONFIG_GLOBAL', input.gitConfigPath]],
    wellKnownEnv([
      ['WORKER_BACKEND', 'direct'],
      ['RUN_ID', input.taskId],
    ]),
  );
}
