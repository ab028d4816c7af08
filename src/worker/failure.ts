// Failure classification: the Go worker's bounded reasons, exit-code
// normalisation and the sentences shown to users. Pure; table-tested.

/** Wire values of `task_failed.failure_reason` (the server mirrors this list). */
export const FAILURE_REASONS = [
  'unknown',
  'task_timeout',
  'task_cancelled',
  'graceful_shutdown',
  'image_pull',
  'sidecar_prep',
  'container_create',
  'container_start',
  'container_wait',
  'container_exit',
  'container_oom',
  'workspace_setup',
  'setup_command',
  'agent_invocation',
  'teardown_command',
  'dispatch_command',
  'dispatch_timeout',
  'cancel_command',
  'job_create',
  'job_watch',
  'job_failed',
  'evicted',
  'pod_watch',
  'unschedulable',
  'volume_mount',
  'init_container',
  'invalid_image',
  'active_deadline',
  'cleanup',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const FAILURE_PHASES = ['assignment', 'backend', 'cleanup'] as const;
export type FailurePhase = (typeof FAILURE_PHASES)[number];

/** Why a task's abort signal fired. */
export type CancellationSource = 'user' | 'shutdown';

/** A failure a backend (or the worker) can name; its message is the error text. */
export class TaskFailure extends Error {
  readonly reason: FailureReason;
  readonly phase: FailurePhase;
  /** Normalised exit code (128 + signal for signals); 0 when none was observed. */
  readonly exitCode: number;

  constructor(reason: FailureReason, message: string, options: { exitCode?: number; phase?: FailurePhase; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'TaskFailure';
    this.reason = reason;
    this.phase = options.phase ?? 'backend';
    this.exitCode = options.exitCode ?? 0;
  }
}

/** Thrown by a backend when the task's abort signal stopped it. */
export class TaskCancelled extends Error {
  constructor(message = 'context canceled') {
    super(message);
    this.name = 'TaskCancelled';
  }
}

/** Thrown when a deadline the task runs under has passed. */
export class TaskTimedOut extends Error {
  constructor(message = 'context deadline exceeded') {
    super(message);
    this.name = 'TaskTimedOut';
  }
}

export interface ClassifiedFailure {
  phase: FailurePhase;
  reason: FailureReason;
  exitCode: number;
  /** The user-facing `message` of `task_failed`. */
  message: string;
}

function chain(error: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e: unknown = error; e !== undefined && out.length < 16; e = (e as { cause?: unknown }).cause) {
    out.push(e);
    if (!(e instanceof Error)) break;
  }
  return out;
}

const INTERRUPTED =
  'The task was interrupted due to an infrastructure issue (context canceled). This is typically transient \u2014 please try again.';
const TIMED_OUT =
  'The task exceeded its maximum allowed execution time and was terminated. Consider breaking the task into smaller steps or increasing the timeout.';
const SHUTDOWN =
  'The worker shut down while the task was running, so the task was stopped. Run it again once the worker is back.';

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Classifies a failed execution like the Go worker (deadline, then cancellation,
 * then the outermost TaskFailure, else unknown) and re-labels failures caused by
 * our own shutdown as `graceful_shutdown`.
 */
export function classifyFailure(error: unknown, source: CancellationSource | undefined): ClassifiedFailure {
  const links = chain(error);
  const failure = links.find((e): e is TaskFailure => e instanceof TaskFailure);
  const exitCode = failure?.exitCode ?? 0;
  let phase: FailurePhase = 'backend';
  let reason: FailureReason = 'unknown';
  let message = `Failed to execute task: ${errorText(error)}`;
  if (links.some((e) => e instanceof TaskTimedOut)) {
    reason = 'task_timeout';
    message = TIMED_OUT;
  } else if (links.some((e) => e instanceof TaskCancelled)) {
    reason = 'task_cancelled';
    message = INTERRUPTED;
  } else if (failure) {
    phase = failure.phase;
    reason = failure.reason;
  }
  if (source === 'shutdown' && (reason === 'task_cancelled' || exitCode === 143)) {
    reason = 'graceful_shutdown';
    message = SHUTDOWN;
  }
  return { phase, reason, exitCode, message };
}

/** 128 + signal number for a signalled process, else its exit status. */
export function normaliseExitCode(exitCode: number | undefined, signal: string | undefined): number | undefined {
  if (signal) {
    const number = SIGNAL_NUMBERS[signal];
    if (number !== undefined) return 128 + number;
  }
  return exitCode;
}

const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/** Go's `exec` error text for a process outcome (`exit status 2`, `signal: killed`). */
export function goExitText(exitCode: number | undefined, signal: string | undefined): string {
  if (signal) return `signal: ${GO_SIGNAL_NAMES[signal] ?? signal.toLowerCase()}`;
  return `exit status ${exitCode ?? -1}`;
}

const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGHUP: 'hangup',
  SIGINT: 'interrupt',
  SIGQUIT: 'quit',
  SIGILL: 'illegal instruction',
  SIGTRAP: 'trace/breakpoint trap',
  SIGABRT: 'aborted',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGKILL: 'killed',
  SIGSEGV: 'segmentation fault',
  SIGPIPE: 'broken pipe',
  SIGALRM: 'alarm clock',
  SIGTERM: 'terminated',
};
