// Reading a task's Job and Pods: done, failed (why, in words a person can act
// on), or still going. Pure over the objects the API returned; the backend
// decides when to look and what to do. Checks and texts follow the Go worker
// so operators see the same messages; the differences are noted where made.
import type { CoreV1Event, V1Container, V1ContainerStatus, V1Job, V1Pod } from '@kubernetes/client-node';
import type { FailureReason } from '../../task/failure.js';

export interface PodFailure {
  reason: FailureReason;
  message: string;
  /** Normalised: 128 + signal for signals; 0 when none was seen. */
  exitCode: number;
  /** A transient image pull failure: act only when it has lasted this long. */
  graceMs?: number;
}

export type JobState = { kind: 'running' } | { kind: 'complete' } | { kind: 'failed'; reason: FailureReason; message: string };

/** Waiting reasons that fail the task (transient image pull failures only after the pull timeout). */
const IMMEDIATE_WAITING = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'ErrImagePull',
  'ImagePullBackOff',
  'ErrImageNeverPull',
  'InvalidImageName',
]);

/**
 * What a registry or the runtime says when retrying cannot help: the image or tag
 * does not exist, the credentials are refused, or the reference is malformed.
 * Anything else (timeouts, refused connections, 5xx, rate limits) may recover.
 */
const PERMANENT_PULL_FAILURE = /manifest unknown|not found|unauthorized|denied|forbidden|invalid reference|repository name must|name unknown|no such image/i;

/**
 * kubelet's own cache races at pod start ("failed to sync configmap cache: timed
 * out waiting for the condition", "object … not registered"): it retries the
 * mount within a second, so these events do not mean the pod is stuck.
 */
const TRANSIENT_MOUNT_FAILURE = /failed to sync (configmap|secret) cache|not registered/i;

/** Whether an image pull failure (kubelet's waiting message) will not fix itself. */
export function isPermanentPullFailure(message: string): boolean {
  return PERMANENT_PULL_FAILURE.test(message);
}

const SIGNAL_NAMES: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 6: 'SIGABRT', 9: 'SIGKILL', 15: 'SIGTERM' };

export function signalName(exitCode: number, signal: number | undefined): string | undefined {
  const n = signal !== undefined && signal > 0 ? signal : exitCode - 128;
  if (n <= 0) return undefined;
  return SIGNAL_NAMES[n] ?? `signal ${n}`;
}

function podContext(pod: V1Pod, namespace: string): string {
  const job = pod.metadata?.labels?.['job-name'];
  return `pod ${pod.metadata?.name ?? '?'} (namespace ${pod.metadata?.namespace || namespace}${job ? `, job ${job}` : ''})`;
}

function details(pod: V1Pod, reason: string | undefined, message: string | undefined): string[] {
  const parts: string[] = [];
  if (pod.status?.phase) parts.push(`Pod phase: ${pod.status.phase}`);
  const r = reason || pod.status?.reason;
  const m = message || pod.status?.message;
  if (r) parts.push(`Pod reason: ${r}`);
  if (m) parts.push(`Pod message: ${m}`);
  return parts;
}

function waitingReason(reason: string, init: boolean): FailureReason {
  if (reason === 'ErrImagePull' || reason === 'ImagePullBackOff' || reason === 'ErrImageNeverPull') return 'image_pull';
  if (reason === 'InvalidImageName') return 'invalid_image';
  if (reason === 'CreateContainerConfigError' || reason === 'CreateContainerError') return init ? 'init_container' : 'container_create';
  return init ? 'init_container' : 'container_wait';
}

const SIGTERM_GUIDANCE = (what: string): string =>
  `SIGTERM usually means Kubernetes or the container runtime asked the ${what} process to stop; check pod events and node activity for eviction, preemption, node drain, activeDeadlineSeconds, or manual deletion.`;

function statusFailure(pod: V1Pod, status: V1ContainerStatus, init: boolean, namespace: string, imagePullTimeoutMs: number): PodFailure | undefined {
  const kind = init ? 'init container' : 'container';
  const terminated = status.state?.terminated;
  if (terminated && terminated.exitCode !== 0) {
    const signal = signalName(terminated.exitCode, terminated.signal);
    const parts = [
      `${kind} ${status.name} in ${podContext(pod, namespace)} exited with code ${terminated.exitCode}${signal ? ` (${signal})` : ''}`,
      ...details(pod, terminated.reason, terminated.message),
    ];
    if (signal === 'SIGTERM') parts.push(SIGTERM_GUIDANCE(init ? 'setup' : 'task'));
    const reason: FailureReason = init ? 'init_container' : terminated.reason === 'OOMKilled' ? 'container_oom' : 'container_exit';
    if (reason === 'container_oom') parts.push('The container ran out of memory; give the task more memory (instance shape or pod_template resources).');
    return {
      reason,
      message: parts.join('. '),
      exitCode: terminated.signal !== undefined && terminated.signal > 0 ? 128 + terminated.signal : terminated.exitCode,
    };
  }
  const waiting = status.state?.waiting;
  if (waiting?.reason && IMMEDIATE_WAITING.has(waiting.reason)) {
    const reason = waitingReason(waiting.reason, init);
    const parts = [
      `${kind} ${status.name} in ${podContext(pod, namespace)} is waiting: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
      ...details(pod, waiting.reason, waiting.message),
    ];
    if (waiting.reason === 'ErrImageNeverPull')
      parts.push(`The image is not on the node and image_pull_policy is Never; load it onto the node or allow pulls.`);
    else if (reason === 'image_pull' || reason === 'invalid_image')
      parts.push('Check the image name and tag, and that the cluster can pull it (imagePullSecrets in pod_template).');
    const transient = reason === 'image_pull' && waiting.reason !== 'ErrImageNeverPull' && !isPermanentPullFailure(waiting.message ?? '');
    if (transient && imagePullTimeoutMs > 0) parts.push(`The pull kept failing for image_pull_timeout (${Math.round(imagePullTimeoutMs / 1000)} s)`);
    return { reason, message: parts.join('. '), exitCode: 0, ...(transient ? { graceMs: imagePullTimeoutMs } : {}) };
  }
  return undefined;
}

export interface PodCheckOptions {
  namespace: string;
  now: number;
  /** 0 disables the unschedulable check. */
  unschedulableTimeoutMs: number;
  /** How long a transient image pull failure may last; 0 fails at the first. */
  imagePullTimeoutMs: number;
  /** The pod's events, when they were listed (only for pods kubelet is setting up). */
  events?: readonly CoreV1Event[] | undefined;
}

/**
 * Whether the events of this pod are worth listing (the volume-mount check needs
 * them): only a pod kubelet is still mounting for — bound to a node, Pending,
 * its sandbox not ready (PodReadyToStartContainers is set once the volumes are
 * mounted and the sandbox runs, so a pod pulling its image needs no look). One
 * waiting for the scheduler has nothing mounted yet.
 */
export const podNeedsEvents = (pod: V1Pod): boolean => {
  if (pod.status?.phase !== 'Pending') return false;
  const conditions = pod.status.conditions ?? [];
  const bound = Boolean(pod.spec?.nodeName) || conditions.some((c) => c.type === 'PodScheduled' && c.status === 'True');
  return bound && !conditions.some((c) => c.type === 'PodReadyToStartContainers' && c.status === 'True');
};

/** The first failure a task Pod shows, checked in the Go worker's order. */
export function podFailure(pod: V1Pod, options: PodCheckOptions): PodFailure | undefined {
  const { namespace } = options;
  const status = pod.status ?? {};
  if (status.reason?.toLowerCase() === 'evicted' || status.message?.toLowerCase().includes('evict')) {
    return { reason: 'evicted', message: [`${podContext(pod, namespace)} failed`, ...details(pod, '', '')].join('. '), exitCode: 0 };
  }
  const restartable = new Set((pod.spec?.initContainers ?? []).filter((c: V1Container) => c.restartPolicy === 'Always').map((c) => c.name));
  for (const init of status.initContainerStatuses ?? []) {
    // A native sidecar ends with SIGTERM when the pod winds down; only its start-up problems count.
    if (restartable.has(init.name) && init.state?.terminated) continue;
    const failure = statusFailure(pod, init, true, namespace, options.imagePullTimeoutMs);
    if (failure) return failure;
  }
  for (const container of status.containerStatuses ?? []) {
    const failure = statusFailure(pod, container, false, namespace, options.imagePullTimeoutMs);
    if (failure) return failure;
  }
  const unschedulable = (status.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable');
  if (unschedulable && options.unschedulableTimeoutMs > 0) {
    const created = pod.metadata?.creationTimestamp ? new Date(pod.metadata.creationTimestamp).getTime() : options.now;
    if (options.now - created >= options.unschedulableTimeoutMs) {
      return {
        reason: 'unschedulable',
        message: [
          `${podContext(pod, namespace)} is unschedulable`,
          `Pod reason: ${unschedulable.reason}`,
          ...(unschedulable.message ? [`Pod message: ${unschedulable.message}`] : []),
          'No node can take the pod; free capacity, or adjust nodeSelector, tolerations or resources in pod_template (raise unschedulable_timeout to wait longer).',
        ].join('. '),
        exitCode: 0,
      };
    }
  }
  if (options.events && podNeedsEvents(pod)) {
    const mount = options.events.find(
      (e) => (e.reason === 'FailedMount' || e.message?.includes('MountVolume.SetUp failed')) && !TRANSIENT_MOUNT_FAILURE.test(e.message ?? ''),
    );
    if (mount) {
      return {
        reason: 'volume_mount',
        message: [
          `${podContext(pod, namespace)} failed to mount a volume`,
          `Kubernetes event reason: ${mount.reason ?? ''}`,
          `Kubernetes event message: ${mount.message ?? ''}`,
        ].join('. '),
        exitCode: 0,
      };
    }
  }
  if (status.phase === 'Failed') {
    const text = `${status.reason ?? ''} ${status.message ?? ''}`.toLowerCase();
    return {
      reason: text.includes('deadline') ? 'active_deadline' : 'job_failed',
      message: [`${podContext(pod, namespace)} failed`, ...details(pod, '', '')].join('. '),
      exitCode: 0,
    };
  }
  return undefined;
}

/** Done only on the Job's Complete condition; failed on its Failed condition. */
export function jobState(job: V1Job, namespace: string): JobState {
  const conditions = job.status?.conditions ?? [];
  if (conditions.some((c) => c.type === 'Complete' && c.status === 'True')) return { kind: 'complete' };
  const failed = conditions.find((c) => c.type === 'Failed' && c.status === 'True');
  if (failed) {
    const text = `${failed.reason ?? ''} ${failed.message ?? ''}`.toLowerCase();
    const deadline = text.includes('deadline');
    return {
      kind: 'failed',
      reason: deadline ? 'active_deadline' : 'job_failed',
      message: [
        `kubernetes Job ${job.metadata?.name ?? '?'} in namespace ${namespace} failed`,
        `Job reason: ${failed.reason ?? ''}`,
        `Job message: ${failed.message ?? ''}`,
        ...(deadline ? ['The task ran longer than active_deadline_seconds allows; raise it in backend.kubernetes or split the task.'] : []),
      ].join('. '),
    };
  }
  return { kind: 'running' };
}
