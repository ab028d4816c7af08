// The lifecycle of one task on this worker, as an explicit state machine.
//
//   claimed ─→ running ─→ completed | failed | cancelled | dispatched
//      └──────────────→ failed | cancelled      (stopped before the backend started)
//   dispatched ─→ cancelled                      (a server cancel routed to the backend)
//
// Assignments that are rejected never get an entry: nothing was claimed.

export type TaskState = 'claimed' | 'running' | 'completed' | 'failed' | 'cancelled' | 'dispatched';

const TRANSITIONS: Record<TaskState, readonly TaskState[]> = {
  claimed: ['running', 'failed', 'cancelled'],
  running: ['completed', 'failed', 'cancelled', 'dispatched'],
  dispatched: ['cancelled'],
  completed: [],
  failed: [],
  cancelled: [],
};

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isTerminal(state: TaskState): boolean {
  return TRANSITIONS[state].length === 0;
}

export class InvalidTransition extends Error {
  constructor(taskId: string, from: TaskState, to: TaskState) {
    super(`task ${taskId}: invalid state transition ${from} → ${to}`);
  }
}

/** One task the worker has claimed; `live` means it still occupies the task id. */
export class TaskEntry {
  private current: TaskState = 'claimed';
  readonly abort = new AbortController();
  readonly claimedAt = Date.now();
  startedAt = 0;
  /** Backend work still running after the outcome was reported (see TaskRun.afterOutcome). */
  readonly cleanups: Promise<void>[] = [];
  /** Set once, by the first stop request: a server cancel or our shutdown. */
  cancellationSource: 'user' | 'shutdown' | undefined;
  dispatchedAt = 0;

  constructor(
    readonly taskId: string,
    readonly executionId: string,
  ) {}

  get state(): TaskState {
    return this.current;
  }

  /** Whether the entry still occupies its task id (not terminal). */
  get live(): boolean {
    return !isTerminal(this.current);
  }

  transition(to: TaskState): void {
    if (!canTransition(this.current, to)) throw new InvalidTransition(this.taskId, this.current, to);
    this.current = to;
  }

  /** Asks the running execution to stop; the first source wins. */
  requestStop(source: 'user' | 'shutdown'): void {
    this.cancellationSource ??= source;
    if (!this.abort.signal.aborted) this.abort.abort(this.cancellationSource);
  }
}
