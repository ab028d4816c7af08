// The local server's queue: which connected worker gets which task, and what a
// worker's reports do to a task's state. Server-side task lifecycle:
//
//   queued → assigned → running → completed | failed | cancelled
//      ↑        │          └──(worker gone, or back without confirming, for lostTimeoutMs)→ lost
//      └────────┘ rejected, not claimed in time, or worker gone before claiming
//
// One instance owns all timers; every state change goes through the store and
// leaves an event in the task's history. A status from a worker counts only for
// a task assigned to that worker's current connection (and a final status that
// names an execution, only for the current one); the rest is logged and ignored. Queue passes read only the slices of the queue a connected worker may
// run, oldest first, a bounded number of rows each.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.js';
import { MAX_FAILURE_DETAILS_BYTES, type FailureDetails, type OutboundMessage } from '../protocol/messages.js';
import { queueSlicesFor, workerMayRun, type WorkerIdentity } from './access.js';
import { buildAssignment, buildCancellation } from './assignment.js';
import { TERMINAL_STATES, type TaskEvent, type TaskRecord } from './records.js';
import type { Store } from './store.js';
import { waitingReason } from './waiting-reason.js';
import type { TaskOutputFrame } from '../protocol/task-output.js';
import { OutputRecorder } from './task-output.js';
import type { ClientEvent } from '../protocol/client-events.js';
import { CLIENT_EVENT_KINDS, clientEventDetail, clientEventKind, MAX_CLIENT_EVENTS_PER_TASK } from './client-events.js';
import type { TaskTelemetry } from './task-telemetry.js';

export interface WorkerSession {
  readonly workerId: string;
  readonly identity: WorkerIdentity;
  /** The build the worker announced on connecting (`X-Warp-Worker-Version`), if any. */
  readonly version?: string | undefined;
  /** Sends one frame to the worker. */
  send(frame: object): void;
}

export interface DispatcherTimings {
  /** An assignment not claimed within this is sent again. */
  claimTimeoutMs: number;
  /** A running task whose worker stays away this long is marked lost. */
  lostTimeoutMs: number;
  /** How often queued work is retried (new pins, memberships, learned capacity). */
  retryIntervalMs: number;
}

export const DEFAULT_TIMINGS: DispatcherTimings = { claimTimeoutMs: 30_000, lostTimeoutMs: 5 * 60_000, retryIntervalMs: 2_000 };

/** Assignments a worker of unknown capacity holds unclaimed at once; each claim makes room for the next. */
export const MAX_UNCLAIMED_PER_WORKER = 8;
/** How long after a reconnect the confirmation request goes out (the worker's held statuses come first). */
const CONFIRM_REQUEST_DELAY_MS = 1_000;
/** Assignments one queue pass sends at most; the next pass (a claim, a submit, the retry timer) goes on. */
export const MAX_ASSIGNMENTS_PER_PASS = 64;

interface SessionState {
  session: WorkerSession;
  /** Tasks assigned to or running on this worker. */
  active: Set<string>;
  /** Of those, the ones sent but not claimed yet. */
  unclaimed: Set<string>;
  /** Running tasks the worker must confirm after it reconnected (deadline timers). */
  unconfirmed: Map<string, NodeJS.Timeout>;
  /** Learned from `at_capacity`: the most tasks it took at once. */
  capacity: number | undefined;
  /** Said `shutting_down`: gets nothing more. */
  draining: boolean;
  lastAssignedAt: number;
}

/** The attempt in flight for an assigned task (kept in memory; a restart issues a new one). */
interface PendingAttempt {
  /** The worker it was last sent to: only that worker's claim counts. */
  workerId: string;
  executionId: string;
  key: string;
  keyId: number;
  timer: NodeJS.Timeout;
}

/** Queued tasks whose reason to wait is worked out on each routing pass (the oldest first). */
const MAX_EXPLAINED = 500;

export type CancelOutcome = 'cancelled' | 'requested' | 'already_finished';

export class Dispatcher {
  private readonly sessions = new Map<string, SessionState>();
  private readonly pending = new Map<string, PendingAttempt>();
  private readonly lostTimers = new Map<string, NodeJS.Timeout>();
  /** Workers that refused a task for a reason other than load: not asked again. */
  private readonly refusedBy = new Map<string, Set<string>>();
  /** The last `waiting` reason told for each queued task. */
  private readonly waiting = new Map<string, string>();
  private readonly notifier = new EventEmitter();
  private readonly output: OutputRecorder;
  private retryTimer: NodeJS.Timeout | undefined;
  /** After stop() the store is closing: nothing is routed or explained any more. */
  private stopped = false;
  private readonly timings: DispatcherTimings;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    timings: Partial<DispatcherTimings> = {},
    /** Gives each assignment a workload token and this server as its log collector. */
    private readonly telemetry?: Pick<TaskTelemetry, 'fieldsFor'>,
  ) {
    this.timings = { ...DEFAULT_TIMINGS, ...timings };
    this.output = new OutputRecorder(store);
    this.notifier.setMaxListeners(0);
  }

  /** Picks up where a previous run left off: unclaimed work is queued again, running work waits for its worker. */
  start(): void {
    for (const task of this.store.tasksInState('assigned')) {
      this.requeue(task, 'the server restarted before a worker claimed the task');
    }
    for (const task of this.store.tasksInState('running')) this.startLostTimer(task);
    this.retryTimer = setInterval(() => this.pump(), this.timings.retryIntervalMs);
    this.retryTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.retryTimer);
    for (const attempt of this.pending.values()) clearTimeout(attempt.timer);
    for (const timer of this.lostTimers.values()) clearTimeout(timer);
    for (const state of this.sessions.values()) for (const timer of state.unconfirmed.values()) clearTimeout(timer);
    this.pending.clear();
    this.lostTimers.clear();
  }

  get connectedWorkers(): { workerId: string; identity: WorkerIdentity; version: string | undefined; activeTasks: number; draining: boolean }[] {
    return [...this.sessions.values()].map((s) => ({
      workerId: s.session.workerId,
      identity: s.session.identity,
      version: s.session.version,
      activeTasks: s.active.size,
      draining: s.draining,
    }));
  }

  // ---- workers --------------------------------------------------------------

  connect(session: WorkerSession): void {
    const state: SessionState = {
      session,
      active: new Set(),
      unclaimed: new Set(),
      unconfirmed: new Map(),
      capacity: undefined,
      draining: false,
      lastAssignedAt: 0,
    };
    this.sessions.set(session.workerId, state);
    for (const taskId of this.store.taskIdsOn(session.workerId, 'running')) this.askToConfirm(taskId, state);
    this.pump();
  }

  /**
   * A worker came back (a reconnect, a restart, or this server restarted) with a
   * task the server has running on it. The worker may have lost it, so it is sent
   * the assignment again, same execution: a worker still running it answers
   * `task_claimed` and does not run it twice. No confirmation within
   * `lostTimeoutMs`: the task is lost. The request waits a moment first, so the
   * statuses the worker held while away (often the task's end) arrive before it.
   */
  private askToConfirm(taskId: string, state: SessionState): void {
    const task = this.store.task(taskId);
    if (!task || task.executionId === undefined) return;
    const { session } = state;
    const executionId = task.executionId;
    clearTimeout(this.lostTimers.get(taskId));
    this.lostTimers.delete(taskId);
    state.active.add(taskId);
    const seconds = Math.round(this.timings.lostTimeoutMs / 1000);
    const timer = setTimeout(() => {
      state.unconfirmed.delete(taskId);
      const current = this.store.task(taskId);
      if (current?.state !== 'running' || current.workerId !== session.workerId) return;
      this.finish(current, 'lost', {
        message: `Worker ${session.workerId} reconnected but did not confirm the task within ${seconds} s; it no longer runs it.`,
      });
      // Whatever the worker does under this task id now is not the task's run any more.
      if (this.sessions.get(session.workerId) === state) session.send(buildCancellation(taskId));
    }, this.timings.lostTimeoutMs);
    timer.unref();
    state.unconfirmed.set(taskId, timer);
    this.event(taskId, 'worker_reconnected', `worker ${session.workerId} is back; it must confirm the task within ${seconds} s`);
    const request = setTimeout(
      () => {
        const current = this.store.task(taskId);
        if (!state.unconfirmed.has(taskId) || this.sessions.get(session.workerId) !== state || current?.state !== 'running') return;
        // Old per-task keys stay valid for the run already under way; this copy carries a fresh one.
        const { key } = this.store.createKey({ kind: 'task', taskId, owner: current.owner }, `task ${taskId}`);
        session.send(buildAssignment(current, executionId, key, this.telemetry?.fieldsFor(key)));
      },
      Math.min(CONFIRM_REQUEST_DELAY_MS, this.timings.lostTimeoutMs / 4),
    );
    request.unref();
  }

  private confirmed(taskId: string, state: SessionState): void {
    const timer = state.unconfirmed.get(taskId);
    if (timer === undefined) return;
    clearTimeout(timer);
    state.unconfirmed.delete(taskId);
    this.event(taskId, 'confirmed', `worker ${state.session.workerId} confirmed it is still running the task`);
  }

  disconnect(session: WorkerSession): void {
    // Sockets closed by the server's own shutdown: the store is closing, the tasks keep their state.
    if (this.stopped) return;
    const state = this.sessions.get(session.workerId);
    if (!state || state.session !== session) return;
    this.sessions.delete(session.workerId);
    for (const timer of state.unconfirmed.values()) clearTimeout(timer);
    for (const taskId of state.active) {
      const task = this.store.task(taskId);
      if (!task || task.workerId !== session.workerId) continue;
      if (task.state === 'assigned') {
        this.requeue(task, `worker ${session.workerId} disconnected before claiming the task`);
      } else if (task.state === 'running') {
        this.event(
          task.id,
          'worker_disconnected',
          `worker ${session.workerId} disconnected; waiting ${Math.round(this.timings.lostTimeoutMs / 1000)} s for it to return`,
        );
        this.startLostTimer(task);
      }
    }
    this.pump();
  }

  /**
   * A validated message from a worker. It counts only for a task this server
   * assigned to this connection (same worker id, so the same principal, and the
   * task in this connection's active set, or its claim-timed-out attempt last sent
   * here; a final status naming an execution, that execution); anything else is
   * logged and ignored.
   */
  handle(session: WorkerSession, message: OutboundMessage): void {
    const state = this.sessions.get(session.workerId);
    if (!state || state.session !== session) return;
    const task = this.store.task(message.data.task_id);
    const log = this.log.child({ taskId: message.data.task_id, workerId: session.workerId });
    if (!task) {
      log.warn(`Ignored ${message.type} for a task this server does not know`);
      return;
    }
    const ours = task.workerId === session.workerId && state.active.has(task.id);
    if (TERMINAL_STATES.has(task.state)) {
      log.info({ state: task.state }, `Ignored ${message.type} for a task that already ended`);
      // The worker started the task again (it came back without it): that run is not wanted.
      if (message.type === 'task_claimed' && task.workerId === session.workerId) session.send(buildCancellation(task.id));
      return;
    }
    switch (message.type) {
      case 'task_claimed':
        if (task.state === 'assigned' && ours) this.markRunning(task, state);
        else if (task.state === 'queued' && this.pending.get(task.id)?.workerId === session.workerId) this.markRunning(task, state);
        else if (task.state === 'running' && ours) this.confirmed(task.id, state);
        else log.warn({ state: task.state }, 'Ignored a claim for a task not assigned to this worker');
        return;
      case 'task_rejected':
        if (task.state === 'assigned' && ours) this.onRejected(task, state, message.data.reason);
        else if (task.state === 'running' && ours && state.unconfirmed.has(task.id)) this.onConfirmationRefused(task, state, message.data.reason);
        else log.warn({ state: task.state }, 'Ignored a rejection for a task not assigned to this worker');
        return;
      case 'task_completed':
      case 'task_failed':
        if (!ours || (task.state !== 'running' && task.state !== 'assigned')) {
          log.warn({ state: task.state }, `Ignored ${message.type} for a task not assigned to this worker`);
          return;
        }
        this.onFinalStatus(task, state, message, log);
        return;
    }
  }

  /** A final status from the worker the task is on: it ends the task, if it is about the current execution. */
  private onFinalStatus(
    task: TaskRecord,
    state: SessionState,
    message: Extract<OutboundMessage, { type: 'task_completed' | 'task_failed' }>,
    log: Logger,
  ): void {
    // A worker that names no execution (one from before the field) is taken at its word for the current one.
    const reported = message.data.execution_id;
    if (reported !== undefined && reported !== task.executionId) {
      log.warn(
        { executionId: reported, currentExecutionId: task.executionId },
        `Ignored ${message.type} for execution ${reported}: the task's current execution on this worker is ${task.executionId ?? '(none)'}`,
      );
      return;
    }
    const reportedExecutionId = reported ?? null;
    if (message.type === 'task_failed') {
      this.finish(task, 'failed', {
        message: message.data.message,
        failureReason: message.data.failure_reason ?? null,
        exitCode: message.data.exit_code ?? null,
        reportedExecutionId,
        failureDetails: keptFailureDetails(message.data.failure_details, log),
      });
    } else if (message.data.task_state === 'CANCELLED') {
      this.finish(task, 'cancelled', { message: message.data.message, reportedExecutionId });
    } else {
      this.finish(task, 'completed', { message: message.data.message, reportedExecutionId });
    }
    state.active.delete(task.id);
    this.pump();
  }

  /**
   * Agent output from a worker (the task-output extension). Kept only from the
   * worker the task is on, while it runs there: nobody can write into another
   * principal's task.
   */
  handleOutput(session: WorkerSession, frame: TaskOutputFrame['data']): void {
    const state = this.sessions.get(session.workerId);
    if (!state || state.session !== session) return;
    const task = this.store.task(frame.task_id);
    if (
      !task ||
      task.workerId !== session.workerId ||
      (task.state !== 'running' && task.state !== 'assigned') ||
      !workerMayRun(session.identity, task, this.store)
    ) {
      this.log.warn({ taskId: frame.task_id, workerId: session.workerId }, 'Ignored output for a task not running on this worker');
      return;
    }
    if (this.output.record(task.id, frame.lines)) this.notify(task.id);
  }

  // ---- tasks ----------------------------------------------------------------

  /** A new task was stored as queued. */
  submitted(task: TaskRecord): void {
    this.notify(task.id);
    this.pump();
  }

  cancel(task: TaskRecord): CancelOutcome {
    if (TERMINAL_STATES.has(task.state)) return 'already_finished';
    const at = new Date().toISOString();
    if (task.state === 'queued') {
      this.finish(task, 'cancelled', { message: 'Cancelled before a worker took the task.', cancelRequestedAt: at });
      return 'cancelled';
    }
    const state = task.workerId === undefined ? undefined : this.sessions.get(task.workerId);
    if (!state) {
      this.finish(task, 'cancelled', { message: 'Cancelled while its worker was disconnected.', cancelRequestedAt: at });
      return 'cancelled';
    }
    this.store.updateTask(task.id, { cancelRequestedAt: at });
    this.event(task.id, 'cancel_requested', `cancellation sent to worker ${state.session.workerId}`);
    state.session.send(buildCancellation(task.id));
    return 'requested';
  }

  /**
   * An event posted for the task through the run client-events call (a setup
   * phase its worker timed): kept in its history once per `event_uuid`, and at
   * most MAX_CLIENT_EVENTS_PER_TASK of them.
   */
  recordClientEvent(taskId: string, event: ClientEvent): 'stored' | 'duplicate' | 'full' {
    const kept = this.store.clientEventUuids(taskId, CLIENT_EVENT_KINDS);
    if (kept.includes(event.event_uuid)) return 'duplicate';
    if (kept.length >= MAX_CLIENT_EVENTS_PER_TASK) return 'full';
    this.store.addEvent(taskId, clientEventKind(event.event_name), clientEventDetail(event), event);
    this.log.debug({ taskId, event: event.event_name }, clientEventDetail(event));
    this.notify(taskId);
    return 'stored';
  }

  /** Resolves with the task's events after `afterSeq`, waiting up to `waitMs` for the first one. */
  async eventsAfter(taskId: string, afterSeq: number, waitMs: number): Promise<TaskEvent[]> {
    const now = this.store.events(taskId, afterSeq);
    if (now.length > 0 || waitMs <= 0) return now;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.notifier.off(taskId, done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      this.notifier.on(taskId, done);
    });
    return this.store.events(taskId, afterSeq);
  }

  /** Why a queued task waits (no worker for its owner, device not pinned, all busy…); undefined when it does not. */
  waitingReason(taskId: string): string | undefined {
    return this.waiting.get(taskId);
  }

  /** Sends queued tasks to workers that may run them and have room, and says why the others wait. */
  pump(): void {
    if (this.stopped) return;
    this.assignQueued();
    this.explainWaiting();
  }

  /** A `waiting` event whenever a queued task's reason to wait changes (for the oldest MAX_EXPLAINED queued tasks). */
  private explainWaiting(): void {
    const queued = this.store.oldestQueued(MAX_EXPLAINED);
    const ids = new Set(queued.map((task) => task.id));
    for (const id of this.waiting.keys()) if (!ids.has(id)) this.waiting.delete(id);
    const workers = [...this.sessions.values()].map((s) => ({
      workerId: s.session.workerId,
      identity: s.session.identity,
      activeTasks: s.active.size,
      capacity: s.capacity,
      draining: s.draining,
      refused: false,
    }));
    // The reason depends only on the owner and device (and on refusals, per task):
    // worked out once per (owner, device) in a pass, so a long queue of one owner costs one.
    const byRoute = new Map<string, string | undefined>();
    for (const task of queued) {
      const refused = this.refusedBy.get(task.id);
      const route = `${task.owner.type}:${task.owner.id}:${task.deviceId ?? ''}`;
      let reason: string | undefined;
      if (refused)
        reason = waitingReason(
          task,
          workers.map((w) => ({ ...w, refused: refused.has(w.workerId) })),
          this.store,
        );
      else if (byRoute.has(route)) reason = byRoute.get(route);
      else byRoute.set(route, (reason = waitingReason(task, workers, this.store)));
      if (reason === this.waiting.get(task.id)) continue;
      if (reason === undefined) {
        this.waiting.delete(task.id);
        continue;
      }
      this.waiting.set(task.id, reason);
      this.event(task.id, 'waiting', `${reason}; the task stays queued`);
    }
  }

  /**
   * Each step gives the least busy worker with room (then the one that waited
   * longest) its oldest runnable task. Bounded: at most MAX_ASSIGNMENTS_PER_PASS
   * assignments, and a few indexed rows read per step.
   */
  private assignQueued(): void {
    let open = [...this.sessions.values()].filter((s) => !s.draining);
    for (let sent = 0; sent < MAX_ASSIGNMENTS_PER_PASS; sent++) {
      open = open.filter((s) => this.hasRoom(s));
      open.sort((a, b) => a.active.size - b.active.size || a.lastAssignedAt - b.lastAssignedAt);
      let next: { task: TaskRecord; state: SessionState } | undefined;
      while (open.length > 0 && !next) {
        const task = this.nextTaskFor(open[0]!);
        if (task) next = { task, state: open[0]! };
        else open.shift(); // nothing it may run now; others may still have work
      }
      if (!next) return;
      this.assign(next.task, next.state);
    }
  }

  private hasRoom(state: SessionState): boolean {
    if (state.draining) return false;
    if (state.capacity !== undefined) return state.active.size < state.capacity;
    return state.unclaimed.size < MAX_UNCLAIMED_PER_WORKER;
  }

  /** The oldest queued task this worker may run and has not refused. */
  private nextTaskFor(state: SessionState): TaskRecord | undefined {
    const { identity, workerId } = state.session;
    const refused = this.refusedCountBy(workerId);
    for (const queued of this.store.queuedIn(queueSlicesFor(identity, this.store), refused + 1)) {
      if (this.refusedBy.get(queued.id)?.has(workerId)) continue;
      if (!workerMayRun(identity, queued, this.store)) continue;
      return this.store.task(queued.id);
    }
    return undefined;
  }

  private refusedCountBy(workerId: string): number {
    let count = 0;
    for (const workers of this.refusedBy.values()) if (workers.has(workerId)) count++;
    return count;
  }

  /** The task is no longer waiting for a claim from whichever worker it was sent to. */
  private releaseUnclaimed(taskId: string): void {
    for (const state of this.sessions.values()) state.unclaimed.delete(taskId);
  }

  private assign(task: TaskRecord, state: SessionState): void {
    const { session } = state;
    let attempt = this.pending.get(task.id);
    const resend = attempt !== undefined;
    if (attempt) clearTimeout(attempt.timer);
    else {
      const { key, info } = this.store.createKey({ kind: 'task', taskId: task.id, owner: task.owner }, `task ${task.id}`);
      attempt = { workerId: session.workerId, executionId: randomUUID(), key, keyId: info.id, timer: undefined as unknown as NodeJS.Timeout };
    }
    attempt.workerId = session.workerId;
    this.releaseUnclaimed(task.id);
    attempt.timer = setTimeout(() => this.onClaimTimeout(task.id, attempt.executionId), this.timings.claimTimeoutMs);
    attempt.timer.unref();
    this.pending.set(task.id, attempt);
    const updated = this.store.updateTask(task.id, {
      state: 'assigned',
      workerId: session.workerId,
      executionId: attempt.executionId,
      attempts: resend ? task.attempts : task.attempts + 1,
      assignedAt: new Date().toISOString(),
    });
    state.active.add(task.id);
    state.unclaimed.add(task.id);
    state.lastAssignedAt = Date.now();
    this.event(task.id, resend ? 'resent' : 'assigned', `${resend ? 'sent again' : 'sent'} to worker ${session.workerId}`);
    session.send(buildAssignment(updated, attempt.executionId, attempt.key, this.telemetry?.fieldsFor(attempt.key)));
  }

  private onClaimTimeout(taskId: string, executionId: string): void {
    const task = this.store.task(taskId);
    if (task?.state !== 'assigned' || task.executionId !== executionId) return;
    if (task.workerId !== undefined) this.sessions.get(task.workerId)?.active.delete(taskId);
    this.releaseUnclaimed(taskId);
    if (task.cancelRequestedAt) {
      this.finish(task, 'cancelled', { message: 'Cancelled before a worker claimed the task.' });
      return;
    }
    // Keep the attempt: the same worker (or another) gets the same execution id, so a late claim still matches.
    this.store.updateTask(taskId, { state: 'queued' });
    this.event(taskId, 'claim_timeout', `worker ${task.workerId ?? '?'} did not claim the task within ${Math.round(this.timings.claimTimeoutMs / 1000)} s`);
    this.pump();
  }

  private markRunning(task: TaskRecord, state: SessionState): void {
    const attempt = this.pending.get(task.id);
    if (attempt) clearTimeout(attempt.timer);
    this.pending.delete(task.id);
    this.releaseUnclaimed(task.id);
    this.store.updateTask(task.id, { state: 'running', workerId: state.session.workerId, claimedAt: new Date().toISOString() });
    state.active.add(task.id);
    this.event(task.id, 'claimed', `worker ${state.session.workerId} claimed the task and is running it`);
    if (task.cancelRequestedAt) state.session.send(buildCancellation(task.id));
    // The claim made room for the next unclaimed assignment.
    this.pump();
  }

  /** Asked to confirm a task after reconnecting, the worker refused it: it does not have it. */
  private onConfirmationRefused(task: TaskRecord, state: SessionState, reason: string): void {
    clearTimeout(state.unconfirmed.get(task.id));
    state.unconfirmed.delete(task.id);
    this.finish(task, 'lost', { message: `Worker ${state.session.workerId} reconnected without the task (it answered: ${reason}).` });
    this.pump();
  }

  private onRejected(task: TaskRecord, state: SessionState, reason: string): void {
    const code = /^([a-z_]+):/.exec(reason)?.[1] ?? 'unspecified';
    state.active.delete(task.id);
    state.unclaimed.delete(task.id);
    if (code === 'at_capacity') state.capacity = state.active.size;
    // A one-shot worker that took its task takes no other, as a draining one.
    else if (code === 'shutting_down' || code === 'one_shot') state.draining = true;
    else {
      const refused = this.refusedBy.get(task.id) ?? new Set<string>();
      refused.add(state.session.workerId);
      this.refusedBy.set(task.id, refused);
    }
    this.requeue(task, `worker ${state.session.workerId} rejected it: ${reason}`, 'rejected');
    this.pump();
  }

  private requeue(task: TaskRecord, why: string, kind = 'requeued'): void {
    const attempt = this.pending.get(task.id);
    if (attempt) clearTimeout(attempt.timer);
    this.pending.delete(task.id);
    this.releaseUnclaimed(task.id);
    this.store.revokeTaskKeys(task.id);
    if (task.cancelRequestedAt) {
      this.finish(task, 'cancelled', { message: 'Cancelled before a worker claimed the task.' });
      return;
    }
    this.store.updateTask(task.id, { state: 'queued', workerId: null, executionId: null });
    this.event(task.id, kind, `${why}; queued again`);
  }

  private startLostTimer(task: TaskRecord): void {
    clearTimeout(this.lostTimers.get(task.id));
    const timer = setTimeout(() => {
      this.lostTimers.delete(task.id);
      const current = this.store.task(task.id);
      if (current?.state !== 'running' || (current.workerId !== undefined && this.sessions.has(current.workerId))) return;
      this.finish(current, 'lost', {
        message: `Worker ${current.workerId ?? '?'} disconnected while running the task and did not report back within ${Math.round(this.timings.lostTimeoutMs / 1000)} s.`,
      });
    }, this.timings.lostTimeoutMs);
    timer.unref();
    this.lostTimers.set(task.id, timer);
  }

  private finish(
    task: TaskRecord,
    state: 'completed' | 'failed' | 'cancelled' | 'lost',
    detail: {
      message: string;
      failureReason?: string | null;
      exitCode?: number | null;
      cancelRequestedAt?: string;
      reportedExecutionId?: string | null;
      /** The failure's details as JSON text, when they are kept. */
      failureDetails?: string | undefined;
    },
  ): void {
    const attempt = this.pending.get(task.id);
    if (attempt) clearTimeout(attempt.timer);
    this.pending.delete(task.id);
    clearTimeout(this.lostTimers.get(task.id));
    this.lostTimers.delete(task.id);
    this.refusedBy.delete(task.id);
    this.output.forget(task.id);
    this.releaseUnclaimed(task.id);
    if (task.workerId !== undefined) {
      const holder = this.sessions.get(task.workerId);
      holder?.active.delete(task.id);
      clearTimeout(holder?.unconfirmed.get(task.id));
      holder?.unconfirmed.delete(task.id);
    }
    this.store.transaction(() => {
      this.store.updateTask(task.id, {
        state,
        message: detail.message,
        failureReason: detail.failureReason ?? null,
        exitCode: detail.exitCode ?? null,
        reportedExecutionId: detail.reportedExecutionId ?? null,
        finishedAt: new Date().toISOString(),
        ...(detail.cancelRequestedAt ? { cancelRequestedAt: detail.cancelRequestedAt } : {}),
      });
      if (detail.failureDetails !== undefined) this.store.setFailureDetails(task.id, detail.failureDetails);
      // The agent is done: its per-task key stops working.
      this.store.revokeTaskKeys(task.id);
    });
    const extra = state === 'failed' ? ` (${detail.failureReason ?? 'no reason'}${detail.exitCode ? `, exit code ${detail.exitCode}` : ''})` : '';
    this.event(task.id, state, `${detail.message}${extra}`);
  }

  private event(taskId: string, kind: string, detail: string): void {
    this.store.addEvent(taskId, kind, detail);
    this.log.info({ taskId, event: kind }, detail);
    this.notify(taskId);
  }

  /** Events of a task were added elsewhere (exported logs): its watchers look again. */
  eventsAdded(taskId: string): void {
    this.notify(taskId);
  }

  private notify(taskId: string): void {
    this.notifier.emit(taskId);
  }
}

/**
 * A failure's details as the server keeps them (JSON text): at most 32 KiB, as
 * the Warp server keeps; larger ones are left out, said in the log, and the
 * task is finished all the same.
 */
function keptFailureDetails(details: FailureDetails | undefined, log: Logger): string | undefined {
  if (details === undefined) return undefined;
  const json = JSON.stringify(details);
  const bytes = Buffer.byteLength(json);
  if (bytes <= MAX_FAILURE_DETAILS_BYTES) return json;
  log.warn(
    { bytes, limit: MAX_FAILURE_DETAILS_BYTES },
    `Did not keep the task's failure details: ${bytes} bytes is more than the ${MAX_FAILURE_DETAILS_BYTES} this server keeps`,
  );
  return undefined;
}
