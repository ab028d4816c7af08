// The command backend: hands each task to the operator's dispatch command
// (the v1 JSON payload on stdin) and leaves the run to the system it started.
// The remote agent reports the outcome itself.
//
// Differences from the Go worker, on purpose:
// * the worker's own API key is not in the commands' environment (an operator
//   who wants it there names it with -e / environment);
// * a timeout or cancel stops the command's whole process group (SIGTERM, then
//   SIGKILL), not only /bin/sh;
// * a failure message quotes the end of the command's stderr;
// * a cancel that arrives while the dispatch runs waits for the dispatch to be
//   stopped before the cancel command runs, so it cannot overtake it;
// * handed-off tasks are remembered for cancellation within bounds (age and
//   count; the worker core keeps that record and passes the ids to cancelTask),
//   and worker shutdown lets running dispatches finish.
import { formatGoDuration } from '../../config/go-duration.js';
import type { WorkerConfigFor } from '../../config/worker-config.js';
import type { Logger } from '../../log/logger.js';
import { goExitText, TaskCancelled, TaskFailure } from '../../task/failure.js';
import type { Backend, ExecutionOutcome, TaskParams, TaskRun } from '../../task/contract.js';
import { mergeEnv, toProcessEnv, workerEnvWithoutCredentials } from '../shared/env.js';
import { wellKnownEnv } from '../shared/well-known-env.js';
import { startErrorText } from '../shared/start-error.js';
import { dispatchPayload } from './payload.js';
import { runShell, SHELL, type ShellResult } from './shell.js';

/** A dispatch or cancel command being stopped gets this long between SIGTERM and SIGKILL. */
export const COMMAND_STOP_GRACE_MS = 2_000;

export interface CommandBackendDeps {
  log: Logger;
  /** The worker's environment (default `process.env`). */
  hostEnv?: NodeJS.ProcessEnv;
}

export async function createCommandBackend(config: WorkerConfigFor<'command'>, deps: CommandBackendDeps): Promise<Backend> {
  if (!config.command.dispatchCommand) {
    throw new Error('command backend requires a dispatch command: set backend.command.dispatch_command in the config file');
  }
  deps.log.info('Using command backend');
  return new CommandBackend(config, deps);
}

/** What the dispatch or cancel command sees as its environment. */
export function commandEnv(
  hostEnv: Readonly<Record<string, string | undefined>>,
  apiKey: string,
  operatorEnv: Readonly<Record<string, string>>,
  wellKnown: Array<[string, string]>,
): Map<string, string> {
  // The OZ_ and WARP_ variables come last: operator settings cannot clobber them.
  return mergeEnv(workerEnvWithoutCredentials(hostEnv, apiKey), Object.entries(operatorEnv), wellKnown);
}

/** The OZ_ and WARP_ variables a dispatch command gets (also shown by `oz-worker plan`). */
export function dispatchVariables(params: Pick<TaskParams, 'taskId' | 'executionId' | 'image'>, serverRootUrl: string): Array<[string, string]> {
  return wellKnownEnv([
    ['RUN_ID', params.taskId],
    ['EXECUTION_ID', params.executionId],
    ['WORKER_BACKEND', 'command'],
    ['SERVER_ROOT_URL', serverRootUrl],
    ['DOCKER_IMAGE', params.image],
  ]);
}

/** The OZ_ and WARP_ variables a cancel command gets (also shown by `oz-worker plan`). */
export function cancelVariables(ids: { taskId: string; executionId: string }): Array<[string, string]> {
  return wellKnownEnv([
    ['RUN_ID', ids.taskId],
    ['EXECUTION_ID', ids.executionId],
    ['WORKER_BACKEND', 'command'],
  ]);
}

function outcomeText(result: ShellResult): string {
  const { end } = result;
  const text = end.kind === 'not-started' ? startErrorText(SHELL, end.error) : goExitText(end.exitCode, end.signal);
  return result.stderrTail ? `${text}; stderr: ${result.stderrTail}` : text;
}

class CommandBackend implements Backend {
  readonly name = 'command' as const;
  readonly preservesTasksOnShutdown = true;
  /** Dispatch commands still running, by task id; settled once the command ended. */
  private readonly dispatching = new Map<string, Promise<unknown>>();
  private readonly hostEnv: NodeJS.ProcessEnv;

  constructor(
    private readonly config: WorkerConfigFor<'command'>,
    private readonly deps: CommandBackendDeps,
  ) {
    this.hostEnv = deps.hostEnv ?? process.env;
  }

  private get command() {
    return this.config.command;
  }

  private env(wellKnown: Array<[string, string]>, log: Logger): Record<string, string> {
    const { env, dropped } = toProcessEnv(commandEnv(this.hostEnv, this.config.apiKey, this.config.operatorEnv, wellKnown));
    if (dropped.length > 0)
      log.warn({ variables: dropped }, 'Left out environment variables a command cannot receive (empty name, "=" in the name, or a NUL character)');
    return env;
  }

  executeTask(run: TaskRun): Promise<ExecutionOutcome> {
    const execution = this.dispatch(run);
    const taskId = run.params.taskId;
    this.dispatching.set(taskId, execution);
    const forget = (): void => {
      if (this.dispatching.get(taskId) === execution) this.dispatching.delete(taskId);
    };
    execution.then(forget, forget);
    return execution;
  }

  private async dispatch(run: TaskRun): Promise<ExecutionOutcome> {
    const { params, signal, log } = run;
    const { dispatchCommand, dispatchTimeoutMs } = this.command;
    if (signal.aborted) throw new TaskCancelled();
    const payload = dispatchPayload(params, { serverRootUrl: this.config.serverRootUrl, workerId: this.config.workerId });
    const env = this.env(dispatchVariables(params, this.config.serverRootUrl), log);
    log.info(`Dispatching task ${params.taskId} via command backend`);
    const result = await runShell({
      command: dispatchCommand,
      env,
      input: payload,
      timeoutMs: dispatchTimeoutMs,
      signal,
      graceMs: COMMAND_STOP_GRACE_MS,
      onLine: (stream, line) => log.info({ stream, command: 'dispatch' }, line),
    });
    if (result.cancelled) throw new TaskCancelled();
    if (result.timedOut) {
      throw new TaskFailure(
        'dispatch_timeout',
        `dispatch command timed out after ${formatGoDuration(dispatchTimeoutMs)}: ${outcomeText(result)} (it should hand the task off and exit; raise backend.command.dispatch_timeout if it needs longer)`,
      );
    }
    if (result.end.kind !== 'exited' || result.end.exitCode !== 0) {
      throw new TaskFailure('dispatch_command', `dispatch command failed: ${outcomeText(result)}`);
    }
    log.info(`Task ${params.taskId} dispatched successfully`);
    return { kind: 'handedOff' };
  }

  /** The core calls this for a task it still remembers (running or handed off), with its ids. */
  async cancelTask(ids: { taskId: string; executionId: string }): Promise<void> {
    const { taskId, executionId } = ids;
    const log = this.deps.log.child({ taskId });
    // The task's signal is stopping a running dispatch; let it end before cancelling remotely.
    const pending = this.dispatching.get(taskId);
    if (pending) await pending.catch(() => undefined);
    const { cancelCommand, dispatchTimeoutMs } = this.command;
    if (cancelCommand === '') {
      log.debug("No cancel_command configured; the handed-off task stops through the agent's own cancellation");
      return;
    }
    log.info(`Cancelling handed-off task ${taskId} via command backend`);
    const env = this.env(cancelVariables({ taskId, executionId }), log);
    const result = await runShell({
      command: cancelCommand,
      env,
      timeoutMs: dispatchTimeoutMs,
      graceMs: COMMAND_STOP_GRACE_MS,
      onLine: (stream, line) => log.info({ stream, command: 'cancel' }, line),
    });
    if (result.timedOut) {
      throw new TaskFailure('cancel_command', `cancel command timed out after ${formatGoDuration(dispatchTimeoutMs)}: ${outcomeText(result)}`);
    }
    if (result.end.kind !== 'exited' || result.end.exitCode !== 0) {
      throw new TaskFailure('cancel_command', `cancel command failed: ${outcomeText(result)}`);
    }
  }

  /** Handed-off tasks keep running elsewhere; dispatches still running may finish (the worker bounds the wait). */
  async shutdown(): Promise<void> {
    if (this.dispatching.size > 0) this.deps.log.info({ count: this.dispatching.size }, 'Waiting for running dispatch commands to finish');
    await Promise.allSettled([...this.dispatching.values()]);
    this.deps.log.debug('Command backend shutdown');
  }
}
