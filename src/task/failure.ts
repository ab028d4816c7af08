// Failure classification: the Go worker's bounded reasons, exit-code
// normalisation and the sentences shown to users. Pure; table-tested.
import { errorMessage } from '../errors/error-message.js';
import type { FailureDetails } from '../protocol/messages.js';

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
  // Added after the Go worker at 3382ab6 (named as its later versions name it); appended so the
  // 29 values above keep their order.
  'pod_preempted',
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
  /**
   * What the backend saw of the failure, structured (`task_failed.failure_details`;
   * only Kubernetes sets it). Settable: a backend may finish gathering it after
   * the failure was raised.
   */
  details: FailureDetails | undefined;

  constructor(
    reason: FailureReason,
    message: string,
    options: { exitCode?: number | undefined; phase?: FailurePhase; cause?: unknown; details?: FailureDetails | undefined } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'TaskFailure';
    this.reason = reason;
    this.phase = options.phase ?? 'backend';
    this.exitCode = options.exitCode ?? 0;
    this.details = options.details;
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
  /** For the operator: what the reason means and what to do about it. */
  hint: string;
  /** The backend's structured account of the failure (`failure_details`), when the failure named the outcome. */
  details: FailureDetails | undefined;
}

/**
 * One sentence pair per reason: what happened, then what to do. The wire
 * `message` keeps the Go worker's wording (`Failed to execute task: …`), which
 * the server shows as is; these go to the worker log, `plan` and the docs.
 */
export const FAILURE_HINTS: Readonly<Record<FailureReason, string>> = {
  unknown: 'The task failed for a reason the worker could not classify. Read the error text and the worker log around it.',
  task_timeout: 'The task ran past its time limit and was stopped. Split the work into smaller tasks or raise the limit.',
  task_cancelled: 'The task was interrupted before it finished. Run it again; if this keeps happening, look in the worker log for what stopped it.',
  graceful_shutdown: 'The worker was shutting down and stopped the task. Run the task again once the worker is back.',
  image_pull: 'The task image could not be pulled. Check the image name and tag, that the registry is reachable from the worker, and the registry credentials.',
  sidecar_prep:
    'The sidecar images of the task could not be prepared. Check the sidecar image names, that their mount paths are unique, and that their registry is reachable.',
  container_create: 'The task container could not be created. Read the daemon error: it usually names a bad volume (-v), resource limit or image setting.',
  container_start: 'The task container was created but did not start. Read the daemon error and the Docker daemon log.',
  container_wait: 'The worker lost track of the task container. Check that the container runtime is healthy, then run the task again.',
  container_exit: 'The agent in the container exited with an error. Read the container output in the worker log to see why.',
  container_oom: 'The task ran out of memory and was killed. Give the task more memory (a larger instance shape, or higher limits in pod_template).',
  workspace_setup: 'The task workspace could not be prepared. Check that backend.direct.workspace_root is writable by the worker user and has free space.',
  setup_command: 'The setup command failed, so the agent did not start. Run the setup command by hand in a workspace to see why, and fix it.',
  agent_invocation:
    'The oz agent exited with an error or could not be started. Read its output in the worker log, and check that --oz-path (backend.direct.oz_path) points to a working oz CLI.',
  teardown_command: 'The teardown command failed after the task. Run it by hand to see why; the task result itself stands.',
  dispatch_command: 'The dispatch command failed. Run backend.command.dispatch_command by hand with the payload on stdin to see why.',
  dispatch_timeout: 'The dispatch command did not finish in time. Make it hand the task off and return, or raise backend.command.dispatch_timeout.',
  cancel_command: 'The cancel command failed, so the task may still run where it was dispatched. Run backend.command.cancel_command by hand to see why.',
  job_create: "The task's Kubernetes Job could not be created. Check the worker's RBAC (create on batch/jobs), the namespace's quotas and the pod_template.",
  job_watch: "The worker lost track of the task's Kubernetes Job. Check that the API server is reachable and that the worker may get and watch Jobs.",
  job_failed: "The task's Kubernetes Job failed. Read the pod's events and logs (kubectl describe job, kubectl logs) to see why.",
  evicted:
    "Kubernetes evicted the task's pod, usually because its node ran short of memory or disk. Give the task more resources or schedule it on other nodes.",
  pod_watch: "The worker lost track of the task's pods. Check that the API server is reachable and that the worker may list and watch pods.",
  unschedulable:
    "No node could take the task's pod in time. Check the cluster's free capacity and the node selectors, affinities and tolerations of the pod_template.",
  volume_mount: "A volume of the task's pod could not be mounted. Check the volumes in the pod_template and the pod's events.",
  init_container:
    "An init container of the task's pod failed (a sidecar copy or the setup command). Read that container's log (kubectl logs with -c and its name).",
  invalid_image: 'The task image is not a valid image reference. Fix the image of the environment (or backend.kubernetes.default_image).',
  active_deadline: "The task's pod ran past its deadline and Kubernetes stopped it. Raise backend.kubernetes.active_deadline_seconds or split the task.",
  cleanup: 'Cleaning up after the task failed. Remove what was left behind by hand; the task result itself stands.',
  pod_preempted:
    "Kubernetes stopped the task's pod to make room for a pod of higher priority. Run the task again; to keep it from being preempted, give task pods a higher priorityClassName in the pod_template or add capacity.",
};

function chain(error: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e: unknown = error; e !== undefined && out.length < 16; e = (e as { cause?: unknown }).cause) {
    out.push(e);
    if (!(e instanceof Error)) break;
  }
  return out;
}

const INTERRUPTED = 'The task was interrupted due to an infrastructure issue (context canceled). This is typically transient \u2014 please try again.';
const TIMED_OUT =
  'The task exceeded its maximum allowed execution time and was terminated. Consider breaking the task into smaller steps or increasing the timeout.';
const SHUTDOWN = 'The worker shut down while the task was running, so the task was stopped. Run it again once the worker is back.';

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
  let message = `Failed to execute task: ${errorMessage(error)}`;
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
  // Details describe what the backend saw end the task; a deadline or a cancellation is not that (as in the Go worker).
  const details = reason === 'task_timeout' || reason === 'task_cancelled' ? undefined : failure?.details;
  return { phase, reason, exitCode, message, hint: FAILURE_HINTS[reason], details };
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
