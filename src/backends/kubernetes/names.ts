// Names and labels of task Jobs, as the Go worker makes them, so Jobs of either
// worker are recognised by the other (and by dashboards keyed on the labels).
import { createHash } from 'node:crypto';

export const LABEL_WORKER_ID = 'oz-worker-id';
export const LABEL_WORKER_HASH = 'oz-worker-hash';
export const LABEL_TASK_ID = 'oz-task-id';
export const LABEL_TASK_HASH = 'oz-task-hash';
export const LABEL_EXECUTION_ID = 'oz-execution-id';
export const LABEL_EXECUTION_HASH = 'oz-execution-hash';
/** Ours only (the Go worker ignores it): the raw ids, for reporting after a restart. */
export const ANNOTATION_TASK_ID = 'oz-worker.dev/task-id';
export const ANNOTATION_EXECUTION_ID = 'oz-worker.dev/execution-id';

/** Containers of a task pod, as the Go worker names them (setup timings read their statuses by name). */
export const TASK_CONTAINER = 'task';
export const SETUP_CONTAINER = 'setup';
/** Followed by the sidecar's index: the init containers that copy a sidecar image's files. */
export const SIDECAR_COPY_PREFIX = 'copy-sidecar-';

const MAX_NAME = 63;
const JOB_PREFIX = 'oz-task-';
const EXEC_SEPARATOR = '-exec-';

/** First 8 bytes of SHA-256 of the raw value, as 16 lower-case hex characters. */
export function idHash(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 16);
}

const trimDashes = (s: string): string => s.replace(/^-+|-+$/g, '');

/** Lower-case; anything but [a-z0-9] becomes '-'; no leading or trailing '-' (runs are kept). */
export function sanitizeNameFragment(value: string): string {
  return trimDashes(value.toLowerCase().replace(/[^a-z0-9]/g, '-'));
}

/** A valid label value: [a-z0-9-_.], trimmed, at most 63 characters, `unknown` when empty. */
export function sanitizeLabelValue(value: string): string {
  let out = value
    .toLowerCase()
    .replace(/[^a-z0-9\-_.]/g, '-')
    .replace(/^[-_.]+|[-_.]+$/g, '');
  if (out === '') return 'unknown';
  if (out.length > MAX_NAME) out = out.slice(0, MAX_NAME).replace(/[-_.]+$/, '');
  return out === '' ? 'unknown' : out;
}

/** The execution id, trimmed; the task id when there is none. */
export function executionIdOf(taskId: string, executionId: string): string {
  const trimmed = executionId.trim();
  return trimmed === '' ? taskId : trimmed;
}

/** `oz-task-<run>-exec-<last 8 of execution>`, at most 63 characters. */
export function taskJobName(taskId: string, executionId: string): string {
  let exec = sanitizeNameFragment(executionId);
  if (exec.length > 8) exec = trimDashes(exec.slice(-8));
  if (exec === '') exec = 'exec';
  const room = Math.max(0, MAX_NAME - JOB_PREFIX.length - EXEC_SEPARATOR.length - exec.length);
  let run = sanitizeNameFragment(taskId);
  if (run.length > room) run = trimDashes(run.slice(0, room));
  if (run === '') run = 'run';
  return `${JOB_PREFIX}${run}${EXEC_SEPARATOR}${exec}`;
}

/** The six labels on a task Job and its Pods. */
export function taskLabels(workerId: string, taskId: string, executionId: string): Record<string, string> {
  return {
    [LABEL_WORKER_ID]: sanitizeLabelValue(workerId),
    [LABEL_WORKER_HASH]: idHash(workerId),
    [LABEL_TASK_ID]: sanitizeLabelValue(taskId),
    [LABEL_TASK_HASH]: idHash(taskId),
    [LABEL_EXECUTION_ID]: sanitizeLabelValue(executionId),
    [LABEL_EXECUTION_HASH]: idHash(executionId),
  };
}

/** Selects every Job and Pod of one worker: what the shared watches and the reattach listing use. */
export const workerSelector = (workerId: string): string => `${LABEL_WORKER_HASH}=${idHash(workerId)}`;

/** `oz-preflight-<hash(worker)>-<unix ns>` */
export function preflightJobName(workerId: string, nowNs: bigint): string {
  return `oz-preflight-${idHash(workerId)}-${nowNs}`;
}
