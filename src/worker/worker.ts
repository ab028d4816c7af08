// The worker core: turns decoded frames into task lifecycles and status
// messages. It owns the live-task table and the concurrency limit; the socket
// belongs to the connection, the agent process to the backend.
import { errorMessage } from '../errors/error-message.js';
import type { Backend, ExecutionOutcome, LeftoverNote, ResumableTask, TaskRun } from '../task/contract.js';
import { buildTaskParams, type TaskParamsBuilder } from '../agent/task-params.js';
import type { WorkerConfig } from '../config/worker-config.js';
import type { Logger, SecretScrubber } from '../log/logger.js';
import { decodeFrame } from '../protocol/decode.js';
import { TASK_STATE_CANCELLED, type OutboundMessage, type TaskAssignment } from '../protocol/messages.js';
import { decideAssignment, describeOwner, describeScope } from '../scope/decide.js';
import { classifyFailure, TaskCancelled } from '../task/failure.js';
import { noMetrics, type TaskResult, type WorkerMetrics } from '../observability/worker-metrics.js';
import type { HttpPoster } from '../observability/http-post.js';
import { clientEventsTarget, SetupEventReporter } from '../observability/setup-events.js';
import { TASK_LOG_FLUSH_MS, type TaskLogReporter } from '../observability/task-logs.js';
import { acceptsCancel, isExecuting, TaskEntry, type TaskState } from './task-state.js';

/** Stable codes that start every `task_rejected.reason`. */
export type RejectCode = 'at_capacity' | 'shutting_down' | 'already_running' | 'owner_out_of_scope' | 'invalid_owner' | 'one_shot';

export type AdmissionDecision = { accept: true } | { accept: false; code: RejectCode; reason: string };

export interface WorkerDeps {
  config: WorkerConfig;
  backend: Backend;
  send: (message: OutboundMessage) => void;
  log: Logger;
  /** Builds a task's parameters; default: `buildTaskParams` with `config` (what production runs). */
  buildParams?: TaskParamsBuilder;
  /** Decides whether an assignment's owner is in scope; default: the device scope when `config.device` is set. */
  admit?: ((assignment: TaskAssignment) => AdmissionDecision) | undefined;
  metrics?: WorkerMetrics;
  scrubber?: SecretScrubber;
  /** A task was claimed to run this execution (the journal keeps it; the claim on the wire does not carry it). */
  onClaimed?: (taskId: string, executionId: string) => void;
  /** A claimed task was handed off to a system that reports by itself (dispatch command): no terminal status will follow from here. */
  onHandedOff?: (taskId: string) => void;
  /** One line of a task's agent output, for a server that takes it (the task-output extension). */
  onOutput?: (taskId: string, stream: 'stdout' | 'stderr', line: string) => void;
  /** What a task would leave behind if the worker died now (see TaskRun.recordLeftovers). */
  onLeftovers?: (taskId: string, key: string, note: LeftoverNote | undefined) => void;
  /** Sends the tasks' setup phases to the server (the run client-events call); without it they are not reported. */
  clientEvents?: HttpPoster;
  /** Opens a task's log export when its assignment asks for one (and the operator allows it); absent: no task's logs are exported. */
  taskLogs?: { open(assignment: TaskAssignment, log: Logger): Promise<TaskLogReporter | undefined> };
  /**
   * One-shot mode: the one task ended, its terminal status is queued and its
   * cleanup is done; the worker is to deliver the status and exit.
   */
  onOneShotDone?: () => void;
}

const CANCEL_CALL_TIMEOUT_MS = 10_000;
/** Handed-off tasks are remembered, to route a server cancel to the backend, up to these bounds. */
export const HANDED_OFF_MAX_ENTRIES = 10_000;
export const HANDED_OFF_TTL_MS = 24 * 60 * 60 * 1000;

/** What `task_failed` says for an assignment the worker cannot use (also shown by `oz-worker plan`). */
export function invalidAssignmentMessage(problem: string): string {
  return `The worker could not run this task because its assignment was invalid (${problem}). The dispatch server and this worker may disagree on the protocol; update the worker or report this to the server operator.`;
}

/** The ids a terminal status starts with: the task, and the execution it ran when the assignment named one (omitempty, as Go). */
function statusIds(entry: TaskEntry): { task_id: string; execution_id?: string } {
  return entry.executionId ? { task_id: entry.taskId, execution_id: entry.executionId } : { task_id: entry.taskId };
}

export class Worker {
  private readonly tasks = new Map<string, TaskEntry>();
  /** Tasks handed off, in the order they were handed off (pruned by age and count). */
  private readonly handedOff = new Map<string, TaskEntry>();
  private readonly executions = new Set<Promise<void>>();
  private running = 0;
  private draining = false;
  /** One-shot mode: the task this worker took (it takes no other). */
  private oneShotTask: string | undefined;
  private readonly metrics: WorkerMetrics;
  private readonly buildParams: TaskParamsBuilder;

  constructor(private readonly deps: WorkerDeps) {
    this.metrics = deps.metrics ?? noMetrics;
    this.buildParams = deps.buildParams ?? ((assignment, mcpArgument) => buildTaskParams(assignment, mcpArgument, deps.config));
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Tasks currently executing (occupying a concurrency slot). */
  get activeCount(): number {
    return this.running;
  }

  /** Live entries by task id (tests, diagnostics). */
  taskState(taskId: string): TaskState | undefined {
    return this.tasks.get(taskId)?.state;
  }

  handleFrame(text: string): void {
    const { log } = this.deps;
    const frame = decodeFrame(text);
    switch (frame.kind) {
      case 'assignment':
        this.onAssignment(frame.assignment, frame.mcpArgument);
        return;
      case 'cancellation':
        this.onCancellation(frame.taskId);
        return;
      case 'invalid':
        this.onInvalid(frame.type, frame.taskId, frame.executionId, frame.problem);
        return;
      case 'unparseable':
        log.warn({ bytes: text.length }, `Dropped a frame from the dispatch server: ${frame.problem}`);
        return;
      case 'unknown':
        log.warn({ type: frame.type.slice(0, 64) }, 'Ignoring a message of unknown type');
        return;
      default:
        frame satisfies never;
    }
  }

  private onInvalid(type: string, taskId: string | undefined, executionId: string | undefined, problem: string): void {
    const { log } = this.deps;
    if (type !== 'task_assignment') {
      log.warn({ type, taskId }, `Dropped an invalid ${type}: ${problem}`);
      return;
    }
    if (taskId === undefined) {
      log.error(`Dropped an invalid task assignment without a usable task_id: ${problem}`);
      return;
    }
    if (this.tasks.get(taskId)?.occupiesTaskId) {
      log.error({ taskId }, `Ignored an invalid re-assignment of a task that is already running: ${problem}`);
      return;
    }
    log.error({ taskId }, `Refused an invalid task assignment: ${problem}`);
    this.metrics.taskFailed('assignment', 'unknown');
    this.deps.send({
      type: 'task_failed',
      data: {
        task_id: taskId,
        ...(executionId ? { execution_id: executionId } : {}),
        message: invalidAssignmentMessage(problem),
        failure_reason: 'unknown',
      },
    });
  }

  private admit(assignment: TaskAssignment): AdmissionDecision {
    if (this.deps.admit) return this.deps.admit(assignment);
    const device = this.deps.config.device;
    return device ? decideAssignment(assignment.task.owner, device) : { accept: true };
  }

  private reject(taskId: string, code: RejectCode, sentence: string): void {
    this.metrics.taskRejected(code);
    this.deps.send({ type: 'task_rejected', data: { task_id: taskId, reason: `${code}: ${sentence}` } });
  }

  private onAssignment(assignment: TaskAssignment, mcpArgument: string | undefined): void {
    const { config, log } = this.deps;
    const taskId = assignment.task_id;
    const executionId = assignment.execution_id ?? '';
    log.info({ taskId, executionId, title: assignment.task.title }, 'Received task assignment');

    const existing = this.tasks.get(taskId);
    // A handed-off task is no longer run here: a new assignment of its id runs again.
    if (existing && isExecuting(existing.state)) {
      if (existing.executionId === executionId) {
        // The server re-sent an assignment we already claimed: confirm, do not run twice.
        log.info({ taskId }, 'Assignment re-sent for a task already claimed; confirming the claim again');
        this.deps.send({ type: 'task_claimed', data: { task_id: taskId, worker_id: config.workerId } });
      } else {
        log.warn({ taskId, executionId, running: existing.executionId }, 'Rejected an assignment: the task is already running here');
        this.reject(taskId, 'already_running', `execution ${existing.executionId || '(none)'} of this task is still running on this worker`);
      }
      return;
    }
    if (this.draining) {
      log.info({ taskId }, 'Rejected an assignment: the worker is shutting down');
      this.reject(taskId, 'shutting_down', 'the worker is shutting down; the task stays queued for another worker');
      return;
    }
    const decision = this.admit(assignment);
    if (!decision.accept) {
      const scope = config.device ? describeScope(config.device) : undefined;
      log.warn({ taskId, owner: describeOwner(assignment.task.owner), scope }, `Rejected an assignment outside this device's scope: ${decision.reason}`);
      this.reject(taskId, decision.code, decision.reason.replace(new RegExp(`^${decision.code}:?\\s*`), ''));
      return;
    }
    if (config.oneShot && this.oneShotTask !== undefined) {
      log.warn({ taskId, oneShotTask: this.oneShotTask }, 'Rejected an assignment: this one-shot worker has already taken its task');
      this.reject(taskId, 'one_shot', `this worker runs in one-shot mode and has already taken its one task (${this.oneShotTask}); it takes no other`);
      return;
    }
    const limit = config.maxConcurrentTasks;
    if (limit > 0 && this.running >= limit) {
      log.warn({ taskId, limit }, 'Rejected an assignment: at maximum concurrency');
      this.reject(taskId, 'at_capacity', `worker at maximum concurrency (${limit} tasks running)`);
      return;
    }

    const entry = new TaskEntry(taskId, executionId);
    this.tasks.set(taskId, entry);
    this.running++;
    if (config.oneShot) this.oneShotTask = taskId;
    this.deps.send({ type: 'task_claimed', data: { task_id: taskId, worker_id: config.workerId } });
    this.deps.onClaimed?.(taskId, executionId);
    this.metrics.taskClaimed();
    this.metrics.tasksActive(1);
    this.pruneHandedOff();

    const secrets = Object.values(assignment.env_vars ?? {});
    // One-shot: once the task's status is queued and its cleanup done, the worker's work is over.
    const onDone = config.oneShot ? this.deps.onOneShotDone : undefined;
    this.track(
      entry,
      secrets,
      async (log) => {
        const params = this.buildParams(assignment, mcpArgument);
        const taskLogs = await this.deps.taskLogs?.open(assignment, log);
        entry.taskLogs = taskLogs;
        entry.apply({ type: 'start' });
        entry.startedAt = Date.now();
        log.info({ backend: config.backend }, 'Starting task execution');
        const { onOutput, onLeftovers } = this.deps;
        return this.deps.backend.executeTask({
          params,
          signal: entry.abort.signal,
          log,
          afterOutcome: (cleanup) => entry.cleanups.push(cleanup),
          ...(onOutput ? { output: (stream: 'stdout' | 'stderr', line: string) => onOutput(taskId, stream, line) } : {}),
          ...(onLeftovers ? { recordLeftovers: (key: string, note: LeftoverNote | undefined) => onLeftovers(taskId, key, note) } : {}),
          ...(this.deps.clientEvents ? { setupPhase: this.setupPhaseReporter(entry, assignment, this.deps.clientEvents, log) } : {}),
          ...(taskLogs ? { taskLogs } : {}),
        });
      },
      onDone,
    );
  }

  /**
   * The task's setup-phase hook. Its reporter is made at the first phase (most
   * backends have none): from the assignment's key, or, without one, a single
   * warning that the task's phases are not reported. A phase that ends while
   * the task is being stopped is neither a success nor a failure: not reported.
   */
  private setupPhaseReporter(entry: TaskEntry, assignment: TaskAssignment, poster: HttpPoster, log: Logger): NonNullable<TaskRun['setupPhase']> {
    let reporter: SetupEventReporter | null | undefined;
    return (name, start, finish, isError) => {
      if (entry.abort.signal.aborted) return;
      // The task's exported logs get the phase too (as a record of its own), as the Go worker's do.
      entry.taskLogs?.event(name, start, finish, isError);
      try {
        if (reporter === undefined) {
          const target = clientEventsTarget(this.deps.config.serverRootUrl, assignment.task_id, assignment.env_vars);
          if ('disabled' in target) log.warn(`Setup event reporting is disabled for task ${assignment.task_id}: ${target.disabled}`);
          reporter = 'disabled' in target ? null : new SetupEventReporter(target, poster, log);
        }
        void reporter?.report(name, start, finish, isError);
      } catch (error) {
        // Reporting never fails the task that reports.
        log.warn({ event: name }, `Failed to report setup event ${name} for task ${assignment.task_id}: ${errorMessage(error)}`);
      }
    };
  }

  /**
   * Takes over tasks an earlier run of this worker started (Kubernetes Jobs
   * that outlived a restart) and reports their outcome like any other task.
   */
  adopt(tasks: ResumableTask[]): void {
    for (const task of tasks) {
      if (this.tasks.get(task.taskId)?.occupiesTaskId) continue;
      const entry = new TaskEntry(task.taskId, task.executionId);
      this.tasks.set(task.taskId, entry);
      this.running++;
      this.metrics.tasksActive(1);
      this.deps.log.info({ taskId: task.taskId, executionId: task.executionId }, 'Reattached to a task started before the restart');
      this.track(entry, [], (log) => {
        entry.apply({ type: 'start' });
        entry.startedAt = Date.now();
        return task.resume({ signal: entry.abort.signal, log });
      });
    }
  }

  /** Runs `start` as the entry's execution; `onSettled` once it is over (status queued, cleanup done). */
  private track(entry: TaskEntry, secrets: string[], start: (log: Logger) => Promise<ExecutionOutcome>, onSettled?: () => void): void {
    const execution = this.execute(entry, secrets, start).finally(() => {
      this.executions.delete(execution);
      onSettled?.();
    });
    this.executions.add(execution);
  }

  private async execute(entry: TaskEntry, secrets: string[], start: (log: Logger) => Promise<ExecutionOutcome>): Promise<void> {
    const log = this.deps.log.child({ taskId: entry.taskId });
    this.deps.scrubber?.add(secrets);
    let result: TaskResult = 'failed';
    try {
      const outcome = await afterLogFlush(entry, start(log));
      switch (outcome.kind) {
        case 'handedOff':
          entry.apply({ type: 'handedOff' });
          entry.handedOffAt = Date.now();
          this.handedOff.delete(entry.taskId); // re-inserted at the end: the map stays in hand-off order
          this.handedOff.set(entry.taskId, entry);
          result = 'dispatched'; // the metric's label value
          this.deps.onHandedOff?.(entry.taskId);
          log.info('Task handed off; its runtime reports completion');
          return;
        case 'completed':
          entry.apply({ type: 'succeeded' });
          result = 'succeeded';
          log.info('Task completed');
          this.deps.send({ type: 'task_completed', data: { ...statusIds(entry), message: 'Task completed successfully' } });
          return;
        default:
          outcome satisfies never;
      }
    } catch (error) {
      const before = entry.status;
      const stoppedBy = before.state === 'stopping' ? before.source : undefined;
      const after = entry.apply({ type: 'threw' });
      if (after.state === 'cancelled') {
        result = 'cancelled';
        log.info('Task cancelled by user request');
        this.deps.send({
          type: 'task_completed',
          data: { ...statusIds(entry), message: 'Task cancelled by user request.', task_state: TASK_STATE_CANCELLED },
        });
        return;
      }
      const failure = classifyFailure(error, stoppedBy);
      result = 'failed';
      if (stoppedBy === 'shutdown') {
        // Expected when the worker stops: not an error of the task, and "context canceled" tells nobody anything.
        const detail = error instanceof TaskCancelled ? {} : { err: errorMessage(error) };
        log.warn({ reason: failure.reason, ...detail }, 'Task stopped because the worker is shutting down; reported as failed so the server can run it again');
      } else {
        log.error({ reason: failure.reason, exitCode: failure.exitCode || undefined, err: errorMessage(error), hint: failure.hint }, 'Task failed');
      }
      this.metrics.taskFailed(failure.phase, failure.reason);
      this.deps.send({
        type: 'task_failed',
        data: {
          ...statusIds(entry),
          message: failure.message,
          failure_reason: failure.reason,
          ...(failure.exitCode ? { exit_code: failure.exitCode } : {}),
          ...(failure.details ? { failure_details: failure.details } : {}),
        },
      });
    } finally {
      this.running--;
      this.metrics.tasksActive(-1);
      const started = entry.startedAt || entry.claimedAt;
      this.metrics.taskFinished(result, (Date.now() - started) / 1000);
      if (!entry.occupiesTaskId && this.tasks.get(entry.taskId) === entry) this.tasks.delete(entry.taskId);
      // The slot is free once the agent ended (the limit counts agents); the
      // backend's cleanup still holds shutdown and the task's secrets.
      await Promise.allSettled(entry.cleanups);
      // What the cleanup printed (a teardown hook) goes out too, then the export ends.
      await entry.taskLogs?.shutdown(TASK_LOG_FLUSH_MS);
      this.deps.scrubber?.remove(secrets);
    }
  }

  private onCancellation(taskId: string): void {
    const { log, backend } = this.deps;
    const entry = this.tasks.get(taskId);
    if (!entry || !acceptsCancel(entry.state)) {
      log.warn({ taskId }, 'Received cancellation for a task that is not running here; ignoring it');
      return;
    }
    log.info({ taskId, state: entry.state }, 'Cancellation requested by the server');
    // Running: the abort signal stops it and execute() reports. Handed off: nothing runs here to report.
    entry.apply({ type: 'cancel' });
    if (!entry.occupiesTaskId) this.tasks.delete(taskId);
    if (backend.cancelTask) {
      const call = backend.cancelTask({ taskId, executionId: entry.executionId });
      const timeout = new Promise<never>((_, reject) => {
        const timer = setTimeout(() => reject(new Error(`cancel did not finish within ${CANCEL_CALL_TIMEOUT_MS / 1000}s`)), CANCEL_CALL_TIMEOUT_MS);
        timer.unref();
      });
      Promise.race([call, timeout]).catch((error: unknown) => log.warn({ taskId, err: errorMessage(error) }, 'Backend cancellation failed'));
    }
  }

  /** Forgets handed-off tasks beyond the age and count bounds. */
  private pruneHandedOff(): void {
    const now = Date.now();
    // Oldest first, so the walk stops at the first entry still worth keeping.
    for (const [taskId, entry] of this.handedOff) {
      const current = this.tasks.get(taskId) === entry && entry.state === 'handedOff';
      const expired = now - entry.handedOffAt > HANDED_OFF_TTL_MS || this.handedOff.size > HANDED_OFF_MAX_ENTRIES;
      if (current && !expired) break;
      this.handedOff.delete(taskId);
      if (current) this.tasks.delete(taskId);
    }
  }

  /**
   * Stops taking work and brings running tasks to an end: tasks of a backend
   * that preserves them keep running; others are stopped and their terminal
   * status queued. Resolves when every execution settled or `deadline` passed.
   */
  async drain(deadline: number): Promise<{ settled: boolean }> {
    const { backend, log } = this.deps;
    this.draining = true;
    // A task already stopping keeps the source of its first stop (the table ignores the second).
    const executing = [...this.tasks.values()].filter((t) => isExecuting(t.state));
    if (backend.preservesTasksOnShutdown) {
      if (executing.length) log.info({ count: executing.length }, 'Preserving running tasks during worker shutdown');
    } else if (executing.length) {
      log.info({ count: executing.length }, 'Stopping running tasks for shutdown');
      for (const entry of executing) entry.apply({ type: 'shutdown' });
    }
    const pending = backend.preservesTasksOnShutdown ? [] : [...this.executions];
    const settled = await settleBefore(Promise.allSettled(pending), deadline);
    // Tasks still running (preserved ones, or ones that did not stop in time) send their log records now.
    const logging = executing.filter((entry) => isExecuting(entry.state) && entry.taskLogs);
    if (logging.length > 0) {
      const bound = Math.max(0, Math.min(TASK_LOG_FLUSH_MS, deadline - Date.now()));
      await Promise.allSettled(logging.map((entry) => entry.taskLogs!.shutdown(bound)));
    }
    return { settled };
  }
}

/**
 * The backend's outcome once the task's queued log records went out (at most
 * TASK_LOG_FLUSH_MS), so they reach the collector before the terminal status.
 */
async function afterLogFlush<T>(entry: TaskEntry, run: Promise<T>): Promise<T> {
  try {
    return await run;
  } finally {
    await entry.taskLogs?.flush(TASK_LOG_FLUSH_MS);
  }
}

/** Resolves true when `promise` settles before `deadline` (epoch ms), else false. */
export async function settleBefore(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  const remaining = Math.max(0, deadline - Date.now());
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), remaining)));
  const done = promise.then(() => true as const);
  try {
    return await Promise.race([done, expired]);
  } finally {
    clearTimeout(timer);
  }
}
