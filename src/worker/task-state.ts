// The lifecycle of one task on this worker, as an explicit state machine.
//
//   claimed ─start─→ running ─succeeded─→ completed
//                       ├─────handedOff─→ handedOff ─cancel─→ cancelled
//                       ├─────threw─────→ failed
//                       └─cancel|shutdown─→ stopping(user|shutdown)
//   stopping(user)     ─threw─→ cancelled     (the stop the server asked for)
//   stopping(shutdown) ─threw─→ failed        (so the server can run it again)
//   stopping           ─succeeded|handedOff─→ completed | handedOff (it ended before the stop took)
//   claimed ─threw─→ failed; claimed ─cancel|shutdown─→ stopping  (before the backend started)
//
// "Handed off" is a task given to a system that reports its outcome by itself
// (the command backend's dispatch): no terminal status follows from here.
// Assignments that are rejected never get an entry: nothing was claimed.
//
// Every state is handled in one table (`STATES`), so a new state does not
// compile until each event and each predicate says what it does there.

import type { CancellationSource } from '../task/failure.js';
import type { TaskLogReporter } from '../observability/task-logs.js';

/** Who asked a task to stop: the server (a cancel) or this worker (shutdown). */
export type StopSource = CancellationSource;

export type TaskState = 'claimed' | 'running' | 'stopping' | 'handedOff' | 'completed' | 'failed' | 'cancelled';

/** A state with its data: only `stopping` carries any (who asked the task to stop). */
export type TaskStatus = { state: Exclude<TaskState, 'stopping'> } | { state: 'stopping'; source: StopSource };

export type TaskEvent =
  /** The backend was asked to run the task. */
  | { type: 'start' }
  /** The server cancelled the task. */
  | { type: 'cancel' }
  /** The worker is shutting down and stops the tasks it does not preserve. */
  | { type: 'shutdown' }
  /** The backend resolved: the agent ran to a successful end. */
  | { type: 'succeeded' }
  /** The backend resolved: the task went to a system that reports by itself. */
  | { type: 'handedOff' }
  /** The backend (or building its parameters) threw. */
  | { type: 'threw' };

export type TaskEventType = TaskEvent['type'];
export const TASK_EVENT_TYPES: readonly TaskEventType[] = ['start', 'cancel', 'shutdown', 'succeeded', 'handedOff', 'threw'];
export const TASK_STATES: readonly TaskState[] = ['claimed', 'running', 'stopping', 'handedOff', 'completed', 'failed', 'cancelled'];

/** What an event does in a state: the next status, `'ignore'` (nothing changes), or `'invalid'` (a bug). */
type Reaction = TaskStatus | 'ignore' | 'invalid';

interface StateHandling {
  /** The entry keeps its task id: a cancel finds it, a re-assignment or an adoption does not replace it. */
  occupiesTaskId: boolean;
  /** A server cancel is acted on (the backend's cancelTask is called). */
  acceptsCancel: boolean;
  /** The backend is still running it: a re-assignment of the same id is answered from this entry, not run again. */
  executing: boolean;
  on: Record<TaskEventType, (status: TaskStatus) => Reaction>;
}

const to =
  (status: TaskStatus): (() => Reaction) =>
  () =>
    status;
const ignore = (): Reaction => 'ignore';
const invalid = (): Reaction => 'invalid';

const TERMINAL: StateHandling = {
  occupiesTaskId: false,
  acceptsCancel: false,
  executing: false,
  on: { start: invalid, cancel: ignore, shutdown: ignore, succeeded: invalid, handedOff: invalid, threw: invalid },
};

const STATES: Record<TaskState, StateHandling> = {
  claimed: {
    occupiesTaskId: true,
    acceptsCancel: true,
    executing: true,
    on: {
      start: to({ state: 'running' }),
      cancel: to({ state: 'stopping', source: 'user' }),
      shutdown: to({ state: 'stopping', source: 'shutdown' }),
      succeeded: invalid,
      handedOff: invalid,
      // Building the task's parameters failed before the backend started.
      threw: to({ state: 'failed' }),
    },
  },
  running: {
    occupiesTaskId: true,
    acceptsCancel: true,
    executing: true,
    on: {
      start: invalid,
      cancel: to({ state: 'stopping', source: 'user' }),
      shutdown: to({ state: 'stopping', source: 'shutdown' }),
      succeeded: to({ state: 'completed' }),
      handedOff: to({ state: 'handedOff' }),
      threw: to({ state: 'failed' }),
    },
  },
  stopping: {
    occupiesTaskId: true,
    acceptsCancel: true,
    executing: true,
    on: {
      // Stopped before the backend started: it starts with its signal already aborted.
      start: ignore,
      // The first stop request wins.
      cancel: ignore,
      shutdown: ignore,
      succeeded: to({ state: 'completed' }),
      handedOff: to({ state: 'handedOff' }),
      threw: (status) => (status.state === 'stopping' && status.source === 'user' ? { state: 'cancelled' } : { state: 'failed' }),
    },
  },
  handedOff: {
    occupiesTaskId: true,
    acceptsCancel: true,
    executing: false,
    on: {
      start: invalid,
      // Routed to the backend (the cancel command); the task's own runtime reports the outcome.
      cancel: to({ state: 'cancelled' }),
      // It keeps running elsewhere.
      shutdown: ignore,
      succeeded: invalid,
      handedOff: invalid,
      threw: invalid,
    },
  },
  completed: TERMINAL,
  failed: TERMINAL,
  cancelled: TERMINAL,
};

/** The status after `event`, or `'ignore'` / `'invalid'`. Pure. */
export function nextStatus(status: TaskStatus, event: TaskEvent): Reaction {
  return STATES[status.state].on[event.type](status);
}

/** Whether an entry in `state` keeps its task id (the task is not over for this worker). */
export function occupiesTaskId(state: TaskState): boolean {
  return STATES[state].occupiesTaskId;
}

/** Whether a server cancel for an entry in `state` is acted on. */
export function acceptsCancel(state: TaskState): boolean {
  return STATES[state].acceptsCancel;
}

/** Whether the backend still runs the task (so a re-sent assignment must not start it twice). */
export function isExecuting(state: TaskState): boolean {
  return STATES[state].executing;
}

export class InvalidTransition extends Error {
  constructor(taskId: string, from: TaskState, event: TaskEventType) {
    super(`task ${taskId}: invalid event ${event} in state ${from}`);
  }
}

/** One task the worker has claimed. */
export class TaskEntry {
  private current: TaskStatus = { state: 'claimed' };
  readonly abort = new AbortController();
  readonly claimedAt = Date.now();
  startedAt = 0;
  /** When the task was handed off (for the core's bounds on remembering it). */
  handedOffAt = 0;
  /** Backend work still running after the outcome was reported (see TaskRun.afterOutcome). */
  readonly cleanups: Promise<void>[] = [];
  /** The task's log export, when its assignment asked for one. */
  taskLogs: TaskLogReporter | undefined;

  constructor(
    readonly taskId: string,
    readonly executionId: string,
  ) {}

  get state(): TaskState {
    return this.current.state;
  }

  get status(): TaskStatus {
    return this.current;
  }

  /** See `occupiesTaskId`. */
  get occupiesTaskId(): boolean {
    return occupiesTaskId(this.current.state);
  }

  /**
   * Applies `event`; throws InvalidTransition for an event the state cannot
   * take. A stop (cancel, shutdown) aborts the execution's signal with its source.
   */
  apply(event: TaskEvent): TaskStatus {
    const reaction = nextStatus(this.current, event);
    if (reaction === 'invalid') throw new InvalidTransition(this.taskId, this.current.state, event.type);
    if (reaction === 'ignore') return this.current;
    this.current = reaction;
    if (reaction.state === 'stopping' && !this.abort.signal.aborted) this.abort.abort(reaction.source);
    return reaction;
  }
}
