// A failed task's Job is kept for diagnosis (its TTL removes it later); when
// its pod may still be running, the Job is expired instead of deleted. The
// expiry is a JSON merge patch that sets activeDeadlineSeconds to 1, with the
// Job's resourceVersion and uid as preconditions: the Job controller then stops
// its pods and marks it Failed (DeadlineExceeded), and the Job with its status,
// conditions and events stays for a look (a pod that had already stopped stays
// too, with its logs). A Job replaced by another of the same name is never
// touched; a Job already Complete or Failed is left alone.
//
// The decisions are pure functions (table tests); `finalizeFailedJob` does the
// calls, retried on conflict or transient errors with a bounded backoff.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { errorMessage } from '../../errors/error-message.js';
import type { Logger } from '../../log/logger.js';
import { apiErrorText, type KubeClient, statusOf } from './client.js';
import { LABEL_EXECUTION_HASH } from './names.js';

/**
 * What a failure says about the task's pod: it has stopped (nothing runs any
 * more), or something may still run and has to be stopped.
 */
export type FailureDisposition = 'execution-stopped' | 'termination-required';

const isTerminalPhase = (phase: string | undefined): boolean => phase === 'Failed' || phase === 'Succeeded';

/**
 * Whether nothing of this pod runs: its phase is terminal, or every regular
 * container has exited (restartPolicy Never: kubelet reports the exits before
 * the phase). A pod still waiting for a container, or with one running (a
 * sidecar, a helper), has not stopped.
 */
export function podStopped(pod: V1Pod): boolean {
  if (isTerminalPhase(pod.status?.phase)) return true;
  const statuses = pod.status?.containerStatuses ?? [];
  const names = pod.spec?.containers?.map((c) => c.name) ?? statuses.map((s) => s.name);
  if (names.length === 0) return false;
  return names.every((name) => statuses.find((s) => s.name === name)?.state?.terminated !== undefined);
}

/** A stopped pod that failed: phase Failed, or a container that exited non-zero. */
function podFailed(pod: V1Pod): boolean {
  if (pod.status?.phase === 'Failed') return true;
  if (pod.status?.phase === 'Succeeded') return false;
  return (pod.status?.containerStatuses ?? []).some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
}

/** The disposition of a task that failed on what its pod showed (no pod seen: it may still run). */
export function failureDisposition(pod: V1Pod | undefined): FailureDisposition {
  return pod && podStopped(pod) ? 'execution-stopped' : 'termination-required';
}

/** The Job has ended: its Complete or Failed condition is True. */
export function jobFinished(job: V1Job): boolean {
  return (job.status?.conditions ?? []).some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
}

/** The label the Job controller puts on the pods of a Job (Kubernetes 1.27+). */
export const CONTROLLER_UID_LABEL = 'batch.kubernetes.io/controller-uid';

/**
 * Whether the Job can start nothing more and every pod it controls has stopped,
 * one of them failed. Only a Job that never retries (backoffLimit 0, no pod
 * failure policy) qualifies; pods of other owners are not counted, and no pod
 * at all is no evidence that the work stopped.
 */
export function executionStopped(job: V1Job, pods: readonly V1Pod[]): boolean {
  if (job.spec?.backoffLimit !== 0 || job.spec?.podFailurePolicy) return false;
  const uid = job.metadata?.uid;
  const owned = pods.filter((pod) => pod.metadata?.ownerReferences?.some((ref) => ref.controller === true && ref.uid === uid));
  return owned.length > 0 && owned.every(podStopped) && owned.some(podFailed);
}

/**
 * The merge patch that expires a Job. Zero parallelism stops new pods even
 * before the controller has set startTime; un-suspending lets the 1 s deadline
 * take effect. Keys in this order, as the Go worker sends them. `annotations`
 * ride along in the same write: a second write right after would race the Job
 * controller's status update, and its retry would count the pod it is stopping
 * as failed (BackoffLimitExceeded instead of DeadlineExceeded).
 */
export function expiryPatch(identity: { resourceVersion: string; uid: string }, annotations?: Record<string, string>): object {
  return {
    metadata: { ...(annotations ? { annotations } : {}), resourceVersion: identity.resourceVersion, uid: identity.uid },
    spec: { activeDeadlineSeconds: 1, parallelism: 0, suspend: false },
  };
}

const TRANSIENT_STATUS = new Set([429, 500, 502, 503, 504]);
const TRANSIENT_NETWORK = /ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EAI_AGAIN|socket hang up|network timeout|premature close|unexpected end/i;

/** Worth another try: a conflict (the Job changed meanwhile), a busy or failing API server, or a network error. */
export function retriableError(error: unknown): boolean {
  const status = statusOf(error);
  if (status === 409 || (status !== undefined && TRANSIENT_STATUS.has(status))) return true;
  if (status !== undefined) return false;
  const cause = (error as { cause?: { code?: unknown } })?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  return TRANSIENT_NETWORK.test(`${code} ${errorMessage(cause ?? error)}`);
}

export interface ExpiryBackoff {
  /** Attempts in all (the first included). */
  attempts: number;
  initialMs: number;
  maxMs: number;
  /** Each delay grows by up to this fraction. */
  jitter: number;
}

/** 1 s, 2 s, 4 s, 8 s, 10 s between six attempts (about half a minute at most). */
export const EXPIRY_BACKOFF: ExpiryBackoff = { attempts: 6, initialMs: 1_000, maxMs: 10_000, jitter: 0.1 };

/** The delay before attempt `attempt + 1` (0-based), jitter drawn from `random`. */
export function expiryDelayMs(attempt: number, backoff: ExpiryBackoff = EXPIRY_BACKOFF, random: () => number = Math.random): number {
  return Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt) * (1 + backoff.jitter * random());
}

export class JobReplacedError extends Error {}

/** How a failed task's Job was left. */
export type FailedJobOutcome =
  /** Already Complete or Failed: nothing runs, nothing to do. */
  | 'finished'
  /** Its pods have all stopped: kept as it is. */
  | 'stopped'
  /** The expiry patch was accepted: the Job controller stops its pods. */
  | 'expired'
  /** The Job no longer exists. */
  | 'gone';

export interface FinalizeOptions {
  client: KubeClient;
  log: Logger;
  name: string;
  /** The Job as the task's watch last saw it (identity, resourceVersion, conditions), if it saw it. */
  observed: V1Job | undefined;
  /** The task's execution hash: identifies the Job when the watch never saw it. */
  executionHash: string;
  disposition: FailureDisposition;
  /** Set on the Job by the expiry patch itself (see expiryPatch). */
  annotations?: Record<string, string>;
  backoff?: ExpiryBackoff;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Leaves a failed task's Job kept and stopped: expired (see the file comment)
 * unless it has finished, or its pods have all stopped. Throws a
 * JobReplacedError when the Job of that name is another one, and the last
 * error when the retries ran out.
 */
export async function finalizeFailedJob(options: FinalizeOptions): Promise<FailedJobOutcome> {
  const { observed } = options;
  if (observed && jobFinished(observed)) return 'finished';
  const backoff = options.backoff ?? EXPIRY_BACKOFF;
  const sleep = options.sleep ?? defaultSleep;
  const identity: Identity = { uid: observed?.metadata?.uid };
  for (let attempt = 0; ; attempt++) {
    try {
      return await expireOnce(options, identity);
    } catch (error) {
      if (error instanceof JobReplacedError || !retriableError(error) || attempt + 1 >= backoff.attempts) throw error;
      await sleep(expiryDelayMs(attempt, backoff, options.random));
    }
  }
}

/** The uid of the Job this task ran: from the watch, else learnt from the first read. */
interface Identity {
  uid: string | undefined;
}

/** One round: refresh, re-check identity, decide, patch. */
async function expireOnce(options: FinalizeOptions, identity: Identity): Promise<FailedJobOutcome> {
  const { client, log, name } = options;
  let current: V1Job | undefined;
  try {
    current = await client.getJob(name);
    if (!current) return 'gone';
  } catch (error) {
    if (!options.observed?.metadata?.uid) throw error;
    log.warn(`Cannot refresh abandoned Job ${name}; attempting expiration using its last observed identity: ${apiErrorText(error)}`);
    current = options.observed;
  }
  const uid = current.metadata?.uid ?? '';
  // A Job the watch never saw is this task's if it carries the execution's hash.
  identity.uid ??= current.metadata?.labels?.[LABEL_EXECUTION_HASH] === options.executionHash ? uid : undefined;
  if (uid !== identity.uid) throw new JobReplacedError(`job ${name} was replaced; refusing to expire another execution`);
  if (jobFinished(current)) return 'finished';
  if (options.disposition === 'execution-stopped') {
    try {
      if (executionStopped(current, await client.listPods(`${CONTROLLER_UID_LABEL}=${uid}`))) return 'stopped';
    } catch (error) {
      log.warn(`Cannot confirm execution stopped for Job ${name}; requesting expiration: ${apiErrorText(error)}`);
    }
  }
  const patched = await client.mergePatchJob(name, expiryPatch({ resourceVersion: current.metadata?.resourceVersion ?? '', uid }, options.annotations));
  return patched ? 'expired' : 'gone';
}
