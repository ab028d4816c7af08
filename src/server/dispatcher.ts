// The local server's queue: which connected worker gets which task, and what a
// worker's reports do to a task's state. Server-side task lifecycle:
//
//   queued → assigned → running → completed | failed | cancelled
//      ↑        │          └──(worker gone longer than lostTimeoutMs)→ lost
//      └────────┘ rejected, not claimed in time, or worker gone before claiming
//
// One instance owns all timers; every state change goes through the store and
// leaves an event in the task's history.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.js';
import type { OutboundMessage } from '../protocol/messages.js';
import { workerMayRun, type WorkerIdentity } from './access.js';
import { buildAssignment, buildCancellation } from './assignment.js';
import { TERMINAL_STATES, type Store, type TaskEvent, type TaskRecord } from './store.js';
import { waitingReason } from './waiting-reason.js';
import type { TaskOutputFrame } from '../protocol/task-output.js';
import { OutputRecorder } from './task-output.js';

export interface WorkerSession {
  readonly workerId: string;
  readonly identity: WorkerIdentity;
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

interface SessionState {
  session: WorkerSession;
  /** Tasks assigned to or running on this worker. */
  active: Set<string>;
  /** Learned from `at_capacity`: the most tasks it took at once. */
  capacity: number | undefined;
  /** Said `shutting_down`: gets nothing more. */
  draining: boolean;
  lastAssignedAt: number;
}

/** The attempt in flight for an assigned task (kept in memory; a restart issues a new one). */
interface PendingAttempt {
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
    this.pending.clear();
    this.lostTimers.clear();
  }

  get connectedWorkers(): { workerId: string; identity: WorkerIdentity; activeTasks: number; draining: boolean }[] {
    return [...this.sessions.values()].map((s) => ({
      workerId: s.session.workerId,
      identity: s.session.identity,
      activeTasks: s.active.size,
      draining: s.draining,
    }));
  }

  // ---- workers --------------------------------------------------------------

  connect(session: WorkerSession): void {
    const state: SessionState = { session, active: new Set(), capacity: undefined, draining: false, lastAssignedAt: 0 };
    this.sessions.set(session.workerId, state);
    for (const task of this.store.tasksInState('running')) {
      if (task.workerId !== session.workerId) continue;
      state.active.add(task.id);
      const timer = this.lostTimers.get(task.id);
      if (timer) {
        clearTimeout(timer);
        this.lostTimers.delete(task.id);
        this.event(task.id, 'worker_reconnected', `worker ${session.workerId} is back`);
      }
    }
    this.pump();
  }

  disconnect(session: WorkerSession): void {
    // Sockets closed by the server's own shutdown: the store is closing, the tasks keep their state.
    if (this.stopped) return;
    const state = this.sessions.get(session.workerId);
    if (!state || state.session !== session) return;
    this.sessions.delete(session.workerId);
    for (const taskId of state.active) {
      const task = this.store.task(taskId);
      if (!task || task.workerId !== session.workerId) continue;
      if (task.state === 'assigned') {
        this.requeue(task, `worker ${session.workerId} disconnected before claiming the task`);
      } else if (task.state === 'running') {
        this.event(task.id, 'worker_disconnected', `worker ${session.workerId} disconnected; waiting ${Math.round(this.timings.lostTimeoutMs / 1000)} s for it to return`);
        this.startLostTimer(task);
      }
    }
    this.pump();
  }

  /** A validated message from a worker. */
  handle(session: WorkerSession, message: OutboundMessage): void {
    const state = this.sessions.get(session.workerId);
    if (!state || state.session !== session) return;
    const task = this.store.task(message.data.task_id);
    const log = this.log.child({ taskId: message.data.task_id, workerId: session.workerId });
    if (!task) {
      log.warn(`Ignored ${message.type} for a task this server does not know`);
      return;
    }
    if (TERMINAL_STATES.has(task.state)) {
      log.info({ state: task.state }, `Ignored ${message.type} for a task that already ended`);
      return;
    }
    const ours = task.workerId === session.workerId;
    switch (message.type) {
      case 'task_claimed':
        if (task.state === 'assigned' && ours) this.markRunning(task, state);
        else if (task.state === 'queued' && !this.pending.has(task.id)) this.markRunning(task, state);
        else if (!(task.state === 'running' && ours)) log.warn({ state: task.state, assignedTo: task.workerId }, 'Ignored a claim for a task assigned elsewhere');
        return;
      case 'task_rejected':
        if (task.state === 'assigned' && ours) this.onRejected(task, state, message.data.reason);
        else log.warn({ state: task.state }, 'Ignored a rejection for a task not assigned to this worker');
        return;
      case 'task_completed':
      case 'task_failed':
        if (!ours || (task.state !== 'running' && task.state !== 'assigned')) {
          log.warn({ state: task.state, assignedTo: task.workerId }, `Ignored ${message.type} from a worker the task is not on`);
          return;
        }
        if (message.type === 'task_failed') {
          this.finish(task, 'failed', {
            message: message.data.message,
            failureReason: message.data.failure_reason ?? null,
            exitCode: message.data.exit_code ?? null,
          });
        } else if (message.data.task_state === 'CANCELLED') {
          this.finish(task, 'cancelled', { message: message.data.message });
        } else {
          this.finish(task, 'completed', { message: message.data.message });
        }
        state.active.delete(task.id);
        this.pump();
        return;
    }
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
    if (!task || task.workerId !== session.workerId || (task.state !== 'running' && task.state !== 'assigned') || !workerMayRun(session.identity, task, this.store)) {
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

  private assignQueued(): void {
    const candidates = [...this.sessions.values()].filter((s) => !s.draining && (s.capacity === undefined || s.active.size < s.capacity));
    if (candidates.length === 0) return;
    for (const task of this.store.tasksInState('queued')) {
      const refused = this.refusedBy.get(task.id);
      const eligible = candidates.filter(
        (s) => (s.capacity === undefined || s.active.size < s.capacity) && !refused?.has(s.session.workerId) && workerMayRun(s.session.identity, task, this.store),
      );
      if (eligible.length === 0) continue;
      // The least busy worker, then the one that waited longest.
      eligible.sort((a, b) => a.active.size - b.active.size || a.lastAssignedAt - b.lastAssignedAt);
      this.assign(task, eligible[0]!);
    }
  }

  /** A `waiting` event whenever a queued task's reason to wait changes (for the oldest MAX_EXPLAINED queued tasks). */
  private explainWaiting(): void {
    const queued = this.store.tasksInState('queued').slice(0, MAX_EXPLAINED);
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
    for (const task of queued) {
      const refused = this.refusedBy.get(task.id);
      const views = refused ? workers.map((w) => ({ ...w, refused: refused.has(w.workerId) })) : workers;
      const reason = waitingReason(task, views, this.store);
      if (reason === this.waiting.get(task.id)) continue;
      if (reason === undefined) {
        this.waiting.delete(task.id);
        continue;
      }
      this.waiting.set(task.id, reason);
      this.event(task.id, 'waiting', `${reason}; the task stays queued`);
    }
  }

  private assign(task: TaskRecord, state: SessionState): void {
    const { session } = state;
    let attempt = this.pending.get(task.id);
    const resend = attempt !== undefined;
    if (attempt) clearTimeout(attempt.timer);
    else {
      const { key, info } = this.store.createKey({ kind: 'task', taskId: task.id, owner: task.owner }, `task ${task.id}`);
      attempt = { executionId: randomUUID(), key, keyId: info.id, timer: undefined as unknown as NodeJS.Timeout };
    }
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
    state.lastAssignedAt = Date.now();
    this.event(task.id, resend ? 'resent' : 'assigned', `${resend ? 'sent again' : 'sent'} to worker ${session.workerId}`);
    session.send(buildAssignment(updated, attempt.executionId, attempt.key));
  }

  private onClaimTimeout(taskId: string, executionId: string): void {
    const task = this.store.task(taskId);
    if (!task || task.state !== 'assigned' || task.executionId !== executionId) return;
    if (task.workerId !== undefined) this.sessions.get(task.workerId)?.active.delete(taskId);
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
    this.store.updateTask(task.id, { state: 'running', workerId: state.session.workerId, claimedAt: new Date().toISOString() });
    state.active.add(task.id);
    this.event(task.id, 'claimed', `worker ${state.session.workerId} claimed the task and is running it`);
    if (task.cancelRequestedAt) state.session.send(buildCancellation(task.id));
  }

  private onRejected(task: TaskRecord, state: SessionState, reason: string): void {
    const code = /^([a-z_]+):/.exec(reason)?.[1] ?? 'unspecified';
    state.active.delete(task.id);
    if (code === 'at_capacity') state.capacity = state.active.size;
    else if (code === 'shutting_down') state.draining = true;
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
      if (!current || current.state !== 'running' || (current.workerId !== undefined && this.sessions.has(current.workerId))) return;
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
    detail: { message: string; failureReason?: string | null; exitCode?: number | null; cancelRequestedAt?: string },
  ): void {
    const attempt = this.pending.get(task.id);
    if (attempt) clearTimeout(attempt.timer);
    this.pending.delete(task.id);
    clearTimeout(this.lostTimers.get(task.id));
    this.lostTimers.delete(task.id);
    this.refusedBy.delete(task.id);
    this.output.forget(task.id);
    if (task.workerId !== undefined) this.sessions.get(task.workerId)?.active.delete(task.id);
    this.store.transaction(() => {
      this.store.updateTask(task.id, {
        state,
        message: detail.message,
        failureReason: detail.failureReason ?? null,
        exitCode: detail.exitCode ?? null,
        finishedAt: new Date().toISOString(),
        ...(detail.cancelRequestedAt ? { cancelRequestedAt: detail.cancelRequestedAt } : {}),
      });
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

  private notify(taskId: string): void {
    this.notifier.emit(taskId);
  }
}
