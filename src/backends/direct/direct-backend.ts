// The direct backend: runs the `oz` agent as a local child process, one
// workspace per task (or the operator's target directory), with an isolated
// git config and an environment holding only what the task needs.
//
// Differences from the Go worker, on purpose:
// * setup, agent and teardown each run in their own process group; a cancel
//   sends SIGTERM to the whole group and SIGKILL after `cancelGraceMs`, and
//   processes a command leaves behind are stopped when the task ends;
// * the worker's own API key never reaches setup, agent or teardown;
// * teardown also runs after a cancel (under its own time bound) and with
//   cleanup disabled (only the workspace is kept then);
// * output is logged line by line instead of sharing the worker's stdout;
// * shutdown removes only workspaces of tasks this process ran;
// * a task's processes are stopped when it ends even if they left its process
//   group (found through /proc, see task-processes.ts), and what a crashed
//   worker left (processes, workspace) is cleaned up by the next start;
// * a re-run of a task id waits for the previous run's cleanup before it
//   creates the workspace, so that cleanup never removes the new run's files;
// * with `run_as_user` (worker running as root) setup, agent and teardown run
//   as that user, with its HOME.
import { randomBytes } from 'node:crypto';
import { access, chmod, chown, constants, mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { getSystemErrorMessage } from 'node:util';
import { DEFAULT_WORKSPACE_ROOT, type WorkerConfigFor } from '../../config/worker-config.js';
import type { Logger } from '../../log/logger.js';
import { goExitText, normaliseExitCode, TaskFailure } from '../../task/failure.js';
import type { Backend, ExecutionOutcome, LeftoverNote, TaskLogWriter, TaskRun } from '../../task/contract.js';
import type { RunAsUser } from '../../config/users.js';
import { parseDotenv } from './dotenv.js';
import { throwIfCancelled } from '../shared/cancellation.js';
import { withCleanup } from '../shared/cleanup.js';
import { toProcessEnv, type EnvMap } from '../shared/env.js';
import { startErrorText } from '../shared/start-error.js';
import { runInOwnGroup, type GroupCommand, type GroupProcess, type OutputStream, type ProcessEnd } from './group-process.js';
import {
  defaultProcessTable,
  markValue,
  stopTaskProcesses,
  TASK_MARK_VARIABLE,
  type ProcessIdentity,
  type ProcessRole,
  type ProcessTable,
} from './task-processes.js';
import { agentLaunch, directHostEnv, directTaskEnv, ENV_FILE_PREFIX, GITCONFIG_TEMP_PREFIX, resolvedWorkspaceMode, taskWorkspace } from './launch.js';
import { setupEnv, teardownEnv, type WorkspaceMode, type WorkspacePlan } from './workspace.js';
import { errorMessage } from '../../errors/error-message.js';

/** Teardown's own bound: it runs after the task (also after a cancel), so the task's signal cannot bound it. */
export const TEARDOWN_TIMEOUT_MS = 60_000;

const SHELL = '/bin/sh';

export interface DirectBackendDeps {
  log: Logger;
  /** The worker's environment (default `process.env`). */
  hostEnv?: NodeJS.ProcessEnv;
  /** Finds an executable by name (default: search the host PATH). */
  which?: (name: string) => Promise<string | undefined>;
  /** Bound on the teardown command (default TEARDOWN_TIMEOUT_MS). */
  teardownTimeoutMs?: number;
  /** Where the processes of tasks are found (default: /proc on Linux). */
  processTable?: ProcessTable;
}

/** Start-up checks (workspace root, the oz CLI) before the worker connects; failures are fatal and their message says what to do. */
export async function createDirectBackend(config: WorkerConfigFor<'direct'>, deps: DirectBackendDeps): Promise<Backend> {
  const { log } = deps;
  const runAs = config.direct.runAs;
  // The user's own HOME (and name) replace the worker's for everything started as that user.
  const hostEnv = directHostEnv(deps.hostEnv ?? process.env, runAs);
  const which = deps.which ?? ((name: string) => findOnPath(name, hostEnv.PATH));
  const ozPath = await resolveOzPath(config.direct.ozPath, which, log);

  const configured = resolvedWorkspaceMode(config.direct, DEFAULT_WORKSPACE_ROOT);
  let mode: WorkspaceMode;
  if (configured.kind === 'target-dir') {
    const dir = configured.dir;
    let info;
    try {
      info = await stat(dir);
    } catch (error) {
      throw new Error(`target directory ${dir} does not exist: ${fsErrorText(error)}; create it or change --target-dir / backend.direct.target_dir`);
    }
    if (!info.isDirectory()) throw new Error(`target directory ${dir} is not a directory; point --target-dir / backend.direct.target_dir at a directory`);
    log.info(`Using shared target directory: ${dir} (per-task workspace isolation disabled)`);
    mode = { kind: 'target-dir', dir };
  } else {
    const root = configured.root;
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new Error(
        `failed to create workspace root ${root}: ${fsErrorText(error)}; set --workspace-root or backend.direct.workspace_root to a directory this user can create and write`,
      );
    }
    if (runAs) {
      // Others may pass through the root (not list it) to reach their own workspace.
      try {
        await chmod(root, ((await stat(root)).mode & 0o777) | 0o011);
      } catch (error) {
        throw new Error(`failed to let ${runAs.name} (run_as_user) into workspace root ${root}: ${fsErrorText(error)}`);
      }
      log.info(`Setup, agent and teardown run as ${runAs.name} (uid ${runAs.uid}, HOME ${runAs.home})`);
    }
    mode = { kind: 'per-task', root };
  }

  return new DirectBackend({
    config,
    log,
    hostEnv,
    ozPath,
    mode,
    tempDir: hostEnv.TMPDIR || '/tmp',
    teardownTimeoutMs: deps.teardownTimeoutMs ?? TEARDOWN_TIMEOUT_MS,
    table: deps.processTable ?? defaultProcessTable(),
    runAs,
  });
}

/** The oz CLI the backend runs (also shown by `oz-worker plan`); throws when none is configured and none is on PATH. */
export async function resolveOzPath(configured: string, which: (name: string) => Promise<string | undefined>, log: Logger): Promise<string> {
  if (configured === '') {
    const found = await which('oz');
    if (found === undefined) {
      throw new Error('oz CLI not found in PATH; install it or set backend.direct.oz_path in the config file (or --oz-path)');
    }
    log.info(`Using oz CLI at: ${found}`);
    return found;
  }
  // A bare name is looked up now; a relative path means the worker's directory, not the task's.
  let path = configured;
  if (!configured.includes('/')) path = (await which(configured)) ?? configured;
  else if (!isAbsolute(configured)) path = resolve(configured);
  if (!(await isExecutableFile(path))) {
    log.warn(`oz_path ${path} is not an executable file; tasks will fail until it is (check backend.direct.oz_path)`);
  }
  log.info(`Using oz CLI at: ${path}`);
  return path;
}

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Like Go's exec.LookPath: the first executable file named `name` in an absolute PATH entry. */
export async function findOnPath(name: string, pathVariable: string | undefined): Promise<string | undefined> {
  for (const dir of (pathVariable ?? '').split(':')) {
    if (!isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

/** Go-style text for a file-system error: `mkdir /x: permission denied`. */
function fsErrorText(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  if (typeof e?.errno !== 'number' || !e.syscall) return errorMessage(error);
  const reason = getSystemErrorMessage(e.errno);
  return `${e.syscall}${e.path ? ` ${e.path}` : ''}: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
}

/** Go's exec error text for how a process ended. */
function endText(file: string, end: ProcessEnd): string {
  if (end.kind === 'not-started') return startErrorText(file, end.error);
  return goExitText(end.exitCode ?? undefined, end.signal ?? undefined);
}

/** The agent argv for a debug log line, without the `--mcp` value (it may carry tokens). */
function argsForLog(args: readonly string[]): string[] {
  return args.map((arg, i) => (i > 0 && args[i - 1] === '--mcp' ? '[redacted]' : arg));
}

interface Settings {
  config: WorkerConfigFor<'direct'>;
  log: Logger;
  hostEnv: NodeJS.ProcessEnv;
  ozPath: string;
  mode: WorkspaceMode;
  /** Where target-dir mode puts each task's temporary git config. */
  tempDir: string;
  teardownTimeoutMs: number;
  table: ProcessTable;
  runAs: RunAsUser | undefined;
}

/** What one task holds that cleanup must release. */
interface TaskResources {
  plan: WorkspacePlan;
  gitConfigPath: string;
  /** Target-dir mode: the temporary directory holding the git config. */
  gitConfigDir: string | undefined;
  envFilePath: string | undefined;
  setup: GroupProcess | undefined;
  agent: GroupProcess | undefined;
  teardown: GroupProcess | undefined;
  /** Carried in the environment of every process of the task (TASK_MARK_VARIABLE). */
  mark: string;
}

/** The direct backend's leftover note: enough to find the task's processes and workspace after a crash. */
interface DirectLeftovers extends LeftoverNote {
  mark: string;
  /** Removed after a crash (absent when cleanup is off or in target-dir mode). */
  workspace?: string;
  processes: ProcessIdentity[];
}

function isDirectLeftovers(note: LeftoverNote): note is DirectLeftovers {
  const { mark, workspace, processes } = note;
  return (
    typeof mark === 'string' &&
    /^[0-9a-f]{16}$/.test(mark) &&
    (workspace === undefined || typeof workspace === 'string') &&
    Array.isArray(processes) &&
    processes.every(
      (p: unknown) => typeof p === 'object' && p !== null && Number.isInteger((p as ProcessIdentity).pid) && typeof (p as ProcessIdentity).start === 'string',
    )
  );
}

class DirectBackend implements Backend {
  readonly name = 'direct' as const;
  readonly preservesTasksOnShutdown = false;
  /** Executions and their cleanups, which may outlive the reported outcome. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Per-task workspaces this process created and has not removed yet (cleanup enabled). */
  private readonly workspacesToRemove = new Set<string>();
  /** Cleanups still to finish, by workspace: a re-run of the task id waits for its predecessor's. */
  private readonly releases = new Map<string, Promise<void>>();

  constructor(private readonly settings: Settings) {}

  executeTask(run: TaskRun): Promise<ExecutionOutcome> {
    const execution = this.execute(run);
    this.inFlight.add(execution);
    const forget = (): void => void this.inFlight.delete(execution);
    execution.then(forget, forget);
    return execution;
  }

  /** Waits for running tasks' cleanup, then removes workspaces of ours that a failed cleanup left behind. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    for (const dir of this.workspacesToRemove) {
      try {
        await rm(dir, { recursive: true, force: true });
        this.workspacesToRemove.delete(dir);
        this.settings.log.info(`Removed lingering workspace on shutdown: ${dir}`);
      } catch (error) {
        this.settings.log.warn(`Failed to remove workspace ${dir} during shutdown: ${fsErrorText(error)}`);
      }
    }
  }

  private async execute(run: TaskRun): Promise<ExecutionOutcome> {
    const { params, log } = run;
    const { config, mode, tempDir } = this.settings;
    const plan = taskWorkspace(mode, params.taskId);
    const mark = randomBytes(8).toString('hex');
    if (plan.perTask) {
      await this.afterPreviousRun(plan.dir, run);
      try {
        await makeWorkspaceDir(plan.dir);
        await this.handOver(plan.dir);
      } catch (error) {
        throw new TaskFailure('workspace_setup', `failed to create workspace directory: ${fsErrorText(error)}`, { cause: error });
      }
      if (config.cleanup) this.workspacesToRemove.add(plan.dir);
      log.info(`Created workspace: ${plan.dir}`);
    }
    let gitConfigDir: string | undefined;
    if (plan.gitConfigPath === undefined) {
      try {
        gitConfigDir = await mkdtemp(join(tempDir, GITCONFIG_TEMP_PREFIX));
        await this.handOver(gitConfigDir);
      } catch (error) {
        throw new Error(`failed to create temporary git config directory: ${fsErrorText(error)}`, { cause: error });
      }
    }
    const resources: TaskResources = {
      plan,
      gitConfigPath: plan.gitConfigPath ?? join(gitConfigDir!, '.gitconfig'),
      gitConfigDir,
      envFilePath: undefined,
      setup: undefined,
      agent: undefined,
      teardown: undefined,
      mark,
    };
    const onAbort = (): void => log.info({ reason: run.signal.reason as unknown }, 'Stopping the task: its processes get SIGTERM, then SIGKILL');
    run.signal.addEventListener('abort', onAbort, { once: true });
    // The outcome is known once the body ends: the worker may report it while the workspace goes away.
    return withCleanup(
      run,
      () => this.runInWorkspace(run, resources),
      () => {
        run.signal.removeEventListener('abort', onAbort);
        const cleanup = this.cleanUp(run, resources)
          .catch((error: unknown) => log.warn(`Cleanup after the task failed: ${String(error)}`))
          .then(() => run.recordLeftovers?.(resources.mark, undefined));
        this.inFlight.add(cleanup);
        if (plan.perTask) this.releases.set(plan.dir, cleanup);
        void cleanup.then(() => {
          this.inFlight.delete(cleanup);
          if (this.releases.get(plan.dir) === cleanup) this.releases.delete(plan.dir);
        });
        return cleanup;
      },
    );
  }

  private async runInWorkspace(run: TaskRun, resources: TaskResources): Promise<ExecutionOutcome> {
    const { params, signal, log } = run;
    const { config, hostEnv, ozPath } = this.settings;
    const { plan, gitConfigPath } = resources;
    throwIfCancelled(signal);
    run.taskLogs?.redact(Object.values(config.operatorEnv));
    const baseEnv = directTaskEnv({ params, operatorEnv: config.operatorEnv, workspace: plan, gitConfigPath });
    // Only a setup command can write the env file, so without one it is not made.
    let envFileVars: ReadonlyMap<string, string> = new Map();
    if (config.direct.setupCommand !== '') {
      resources.envFilePath = await createEnvFile(plan.dir);
      await this.handOver(resources.envFilePath);
      await this.runSetup(run, resources, baseEnv);
      envFileVars = await readEnvFile(resources.envFilePath, log);
      run.taskLogs?.redact(envFileVars.values());
    }

    throwIfCancelled(signal);
    const launch = agentLaunch({ ozPath, params, workspace: plan, hostEnv, taskEnv: baseEnv, envFileVars, gitConfigPath });
    const env = this.processEnv(this.marked(launch.env, resources, 'agent'), log, 'agent');
    log.info(`Running oz agent in workspace ${launch.cwd}`);
    log.debug(`Command: ${launch.file} ${argsForLog(launch.args).join(' ')}`);
    const { end, stopped } = await runInOwnGroup(
      { file: launch.file, args: launch.args, cwd: launch.cwd, env, ...this.user() },
      {
        signal,
        graceMs: config.cancelGraceMs,
        onLine: (stream, line) => {
          log.info({ stream }, line);
          run.output?.(stream, line);
        },
        tracking: this.tracking(resources, 'agent'),
        logs: logWriters(run, 'agent'),
        onStart: (started) => this.started(run, resources, (resources.agent = started)),
      },
    );
    if (stopped === 'killed') log.warn(`The agent did not stop within ${config.cancelGraceMs} ms of SIGTERM; sent SIGKILL`);

    if (end.kind === 'exited' && end.exitCode === 0) {
      log.info(`Task ${params.taskId} execution completed successfully`);
      return { kind: 'completed' };
    }
    throwIfCancelled(signal);
    if (end.kind === 'not-started') {
      throw new TaskFailure(
        'agent_invocation',
        `oz agent could not be started: ${startErrorText(ozPath, end.error)}; check that backend.direct.oz_path (or --oz-path) points to the oz CLI`,
        { cause: end.error },
      );
    }
    throw new TaskFailure('agent_invocation', `oz agent exited with error: ${endText(ozPath, end)}`, {
      exitCode: normaliseExitCode(end.exitCode ?? undefined, end.signal ?? undefined),
    });
  }

  private async runSetup(run: TaskRun, resources: TaskResources, baseEnv: EnvMap): Promise<void> {
    const { params, signal, log } = run;
    const { config, hostEnv } = this.settings;
    const command = config.direct.setupCommand;
    const env = setupEnv({
      hostEnv,
      apiKey: config.apiKey,
      taskEnv: baseEnv,
      workspaceDir: resources.plan.dir,
      taskId: params.taskId,
      envFilePath: resources.envFilePath!,
    });
    log.info(`Running setup command: ${command}`);
    const { end } = await runInOwnGroup(this.shellCommand(command, resources.plan.dir, this.marked(env, resources, 'setup'), log, 'setup'), {
      signal,
      graceMs: config.cancelGraceMs,
      onLine: (stream, line) => log.info({ stream, command: 'setup' }, line),
      tracking: this.tracking(resources, 'setup'),
      logs: logWriters(run, 'hook'),
      // What setup started in the background (a database, a proxy) lives until the task ends.
      onStart: (started) => this.started(run, resources, (resources.setup = started)),
    });
    if (end.kind === 'exited' && end.exitCode === 0) return;
    throwIfCancelled(signal);
    throw new TaskFailure('setup_command', `setup command failed: ${endText(SHELL, end)}`);
  }

  /** Post-task cleanup; never changes the task's result. */
  private async cleanUp(run: TaskRun, resources: TaskResources): Promise<void> {
    const { log, signal } = run;
    const { config, teardownTimeoutMs, table } = this.settings;
    const { plan } = resources;
    const graceMs = config.cancelGraceMs;
    // The process scans below are synchronous: let the outcome be reported first.
    await setImmediate();

    // Teardown runs once the agent's processes are gone; without one, the sweep below covers them.
    const teardown = config.direct.teardownCommand !== '';
    if (teardown && resources.agent && (await resources.agent.stop(graceMs)) !== 'not-running') {
      log.info('Stopped processes the agent left running');
    }
    if (resources.envFilePath !== undefined) {
      await rm(resources.envFilePath).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') log.warn(`Failed to remove environment file ${resources.envFilePath}: ${fsErrorText(error)}`);
      });
    }
    if (teardown) {
      // During shutdown teardown gets the agent's grace, so the worker's own deadline holds.
      const bound = signal.reason === 'shutdown' ? Math.min(teardownTimeoutMs, graceMs) : teardownTimeoutMs;
      await this.runTeardown(run, resources, bound);
    }
    // Everything the task started is over now, setup's background services included.
    const leaders = [resources.setup, resources.agent, resources.teardown].filter((p): p is GroupProcess => p?.pid !== undefined);
    const rest = await stopTaskProcesses(
      table,
      {
        groups: leaders.map((p) => p.pid!),
        roots: leaders.flatMap((p) => (p.identity ? [p.identity] : [])),
        mark: `${TASK_MARK_VARIABLE}=${resources.mark}.`,
      },
      graceMs,
    );
    if (rest !== 'not-running') log.info('Stopped processes the task left running');
    if (plan.perTask) {
      if (config.cleanup) {
        log.info(`Removing workspace: ${plan.dir}`);
        try {
          await rm(plan.dir, { recursive: true, force: true });
          this.workspacesToRemove.delete(plan.dir);
        } catch (error) {
          log.warn(`Failed to remove workspace ${plan.dir}: ${fsErrorText(error)}`);
        }
      } else {
        log.info(`Keeping workspace (cleanup disabled): ${plan.dir}`);
      }
    }
    if (resources.gitConfigDir !== undefined) {
      await rm(resources.gitConfigDir, { recursive: true, force: true }).catch((error: unknown) =>
        log.warn(`Failed to remove temporary git config dir ${resources.gitConfigDir}: ${fsErrorText(error)}`),
      );
    }
  }

  private async runTeardown(run: TaskRun, resources: TaskResources, timeoutMs: number): Promise<void> {
    const { params, log } = run;
    const { config, hostEnv } = this.settings;
    const command = config.direct.teardownCommand;
    const env = teardownEnv({
      hostEnv,
      apiKey: config.apiKey,
      workspaceDir: resources.plan.dir,
      gitConfigPath: resources.gitConfigPath,
      taskId: params.taskId,
    });
    const bound = AbortSignal.timeout(timeoutMs);
    log.info(`Running teardown command: ${command}`);
    const { process: teardown, end } = await runInOwnGroup(
      this.shellCommand(command, resources.plan.dir, this.marked(env, resources, 'teardown'), log, 'teardown'),
      {
        signal: bound,
        graceMs: config.cancelGraceMs,
        onLine: (stream, line) => log.info({ stream, command: 'teardown' }, line),
        tracking: this.tracking(resources, 'teardown'),
        logs: logWriters(run, 'hook'),
        onStart: (started) => this.started(run, resources, (resources.teardown = started)),
      },
    );
    await teardown.stop(config.cancelGraceMs);
    if (end.kind === 'exited' && end.exitCode === 0) return;
    if (bound.aborted) log.warn(`Teardown command did not finish within ${timeoutMs} ms and was stopped`);
    else log.warn(`Teardown command failed: ${endText(SHELL, end)}`);
  }

  /**
   * Waits until the cleanup of an earlier run of the same task id (its
   * teardown, its workspace removal) is over, so it cannot remove this run's files.
   */
  private async afterPreviousRun(dir: string, run: TaskRun): Promise<void> {
    for (let previous = this.releases.get(dir); previous !== undefined; previous = this.releases.get(dir)) {
      throwIfCancelled(run.signal);
      run.log.info('Waiting for the cleanup of the previous run of this task before creating its workspace');
      await new Promise<void>((resolve) => {
        const done = (): void => {
          run.signal.removeEventListener('abort', done);
          resolve();
        };
        run.signal.addEventListener('abort', done, { once: true });
        void previous!.then(done);
      });
    }
    throwIfCancelled(run.signal);
  }

  /** Gives a file or directory the task's processes must write to their user (run_as_user). */
  private async handOver(path: string): Promise<void> {
    const user = this.settings.runAs;
    if (user) await chown(path, user.uid, user.gid);
  }

  private user(): Pick<GroupCommand, 'user'> {
    const user = this.settings.runAs;
    return user ? { user: { uid: user.uid, gid: user.gid } } : {};
  }

  private marked(env: EnvMap, resources: TaskResources, role: ProcessRole): EnvMap {
    env.set(TASK_MARK_VARIABLE, markValue(resources.mark, role));
    return env;
  }

  private tracking(resources: TaskResources, role: ProcessRole): { table: ProcessTable; mark: string } {
    return { table: this.settings.table, mark: `${TASK_MARK_VARIABLE}=${markValue(resources.mark, role)}` };
  }

  /** A process of the task started: the journal learns how to find it after a crash. */
  private started(run: TaskRun, resources: TaskResources, _process: GroupProcess): void {
    const identities = [resources.setup, resources.agent, resources.teardown].flatMap((p) => (p?.identity ? [p.identity] : []));
    const workspace = resources.plan.perTask ? resources.plan.dir : undefined;
    run.recordLeftovers?.(resources.mark, this.leftovers(resources.mark, workspace, identities));
  }

  private leftovers(mark: string, workspace: string | undefined, processes: ProcessIdentity[]): DirectLeftovers {
    const removable = workspace !== undefined && this.settings.config.cleanup;
    return { mark, ...(removable ? { workspace } : {}), processes };
  }

  /**
   * Tasks of a previous run of this worker that died with it: their processes
   * (confirmed by start time, so a reused pid is never signalled) and whatever
   * carries their mark are stopped, their workspaces removed.
   */
  recoverLeftovers(notes: ReadonlyArray<{ key: string; taskId: string; note: LeftoverNote }>, cleared: (key: string) => void): void {
    for (const { key, taskId, note } of notes) {
      const log = this.settings.log.child({ taskId });
      if (!isDirectLeftovers(note)) {
        log.warn('Ignoring an unreadable leftover record in the journal');
        cleared(key);
        continue;
      }
      const recovery = this.recover(note, log)
        .catch((error: unknown) => log.warn(`Cleaning up after the previous worker process failed: ${String(error)}`))
        .then(() => cleared(key));
      this.inFlight.add(recovery);
      const dir = note.workspace;
      if (dir !== undefined) this.releases.set(dir, recovery);
      void recovery.then(() => {
        this.inFlight.delete(recovery);
        if (dir !== undefined && this.releases.get(dir) === recovery) this.releases.delete(dir);
      });
    }
  }

  private async recover(note: DirectLeftovers, log: Logger): Promise<void> {
    const { table, config, mode } = this.settings;
    const stopped = await stopTaskProcesses(table, { groups: [], roots: note.processes, mark: `${TASK_MARK_VARIABLE}=${note.mark}.` }, config.cancelGraceMs);
    if (stopped !== 'not-running') log.info('Stopped processes the task left running when the previous worker process died');
    else if (note.processes.length > 0 && process.platform !== 'linux') {
      log.warn('Cannot look for processes the previous worker process left running on this platform (no /proc); check for them by hand');
    }
    const dir = note.workspace;
    // Only a workspace directly under the configured root is ever removed.
    if (dir === undefined || mode.kind !== 'per-task' || dirname(dir) !== mode.root) return;
    await rm(dir, { recursive: true, force: true });
    log.info(`Removed the workspace the previous worker process left: ${dir}`);
  }

  private shellCommand(command: string, cwd: string, env: EnvMap, log: Logger, who: string): GroupCommand {
    return { file: SHELL, args: ['-c', command], cwd, env: this.processEnv(env, log, `${who} command`), ...this.user() };
  }

  private processEnv(env: EnvMap, log: Logger, who: string): Record<string, string> {
    const { env: out, dropped } = toProcessEnv(env);
    if (dropped.length > 0) {
      log.warn({ variables: dropped }, `Left out environment variables the ${who} cannot receive (empty name, "=" in the name, or a NUL character)`);
    }
    return out;
  }
}

/** The task log writers of one process: `agent.stdout`/`agent.stderr`, or the hooks' `hook.stdout`/`hook.stderr`. */
function logWriters(run: TaskRun, source: 'agent' | 'hook'): Record<OutputStream, TaskLogWriter> | undefined {
  const logs = run.taskLogs;
  return logs ? { stdout: logs.writer(`${source}.stdout`), stderr: logs.writer(`${source}.stderr`) } : undefined;
}

/**
 * Creates a task's workspace. The root exists from start-up, so a plain mkdir
 * usually does (much cheaper than a recursive one); an existing directory (a
 * re-sent assignment) is reused, and a root removed since start-up is made again.
 */
async function makeWorkspaceDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await stat(dir)).isDirectory()) return;
    if (code !== 'ENOENT') throw error;
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }
}

/** Creates the empty, owner-only env file the setup command may write variables to. */
async function createEnvFile(dir: string): Promise<string> {
  const path = join(dir, `${ENV_FILE_PREFIX}${randomBytes(8).toString('hex')}`);
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (error) {
    throw new TaskFailure('workspace_setup', `failed to create environment file: ${fsErrorText(error)}`, { cause: error });
  }
  try {
    await handle.close();
  } catch (error) {
    throw new TaskFailure('workspace_setup', `failed to close environment file: ${fsErrorText(error)}`, { cause: error });
  }
  return path;
}

/** The variables setup wrote; none when the file is unreadable or malformed (logged). */
async function readEnvFile(path: string, log: Logger): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    log.warn(`Failed to read environment file: ${fsErrorText(error)}; the agent gets none of its variables`);
    return new Map();
  }
  try {
    return parseDotenv(text);
  } catch (error) {
    log.warn(`Failed to parse environment file: ${errorMessage(error)}; the agent gets none of its variables`);
    return new Map();
  }
}
