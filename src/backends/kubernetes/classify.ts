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

/** 128 + signal when a signal ended the container, else its exit code (the Go worker's normalisation). */
export function normalizedExitCode(terminated: { exitCode: number; signal?: number | undefined }): number {
  return terminated.signal !== undefined && terminated.signal > 0 ? 128 + terminated.signal : terminated.exitCode;
}

/**
 * The container a pod's failure is about, by the Go worker's rule: none for an
 * evicted pod; else the first init container that exited non-zero (not a
 * native sidecar, which ends with SIGTERM when the pod winds down) or cannot
 * be created or pulled (`kind` sidecar when it is a native one); else the first
 * regular container that did either. Its name and kind identify it, never its
 * position.
 */
export function failingContainer(pod: V1Pod): { kind: 'init' | 'sidecar' | 'regular'; status: V1ContainerStatus } | undefined {
  const status = pod.status ?? {};
  if (status.reason?.toLowerCase() === 'evicted' || status.message?.toLowerCase().includes('evict')) return undefined;
  const sidecars = new Set((pod.spec?.initContainers ?? []).filter((c: V1Container) => c.restartPolicy === 'Always').map((c) => c.name));
  const exitedBadly = (s: V1ContainerStatus): boolean => s.state?.terminated !== undefined && normalizedExitCode(s.state.terminated) !== 0;
  const stuck = (s: V1ContainerStatus): boolean => s.state?.waiting?.reason !== undefined && IMMEDIATE_WAITING.has(s.state.waiting.reason);
  for (const init of status.initContainerStatuses ?? []) {
    const sidecar = sidecars.has(init.name);
    if (!sidecar && exitedBadly(init)) return { kind: 'init', status: init };
    if (stuck(init)) return { kind: sidecar ? 'sidecar' : 'init', status: init };
  }
  for (const container of status.containerStatuses ?? []) {
    if (exitedBadly(container) || stuck(container)) return { kind: 'regular', status: container };
  }
  return undefined;
}

function statusFailure(pod: V1Pod, status: V1ContainerStatus, init: boolean, namespace: string, imagePullTimeoutMs: number): PodFailure | undefined {
  const kind = init ? 'init container' : 'container';
  const terminated = status.state?.terminated;
  if (terminated && normalizedExitCode(terminated) !== 0) {
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
      exitCode: normalizedExitCode(terminated),
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
  /**
   * When a mount failure fails the task: once it has lasted `timeoutMs` and is
   * still being reported (`volume_mount_timeout`; 0: never), or `'at-once'`
   * where nothing is left to wait for (the Job failed, the start-up preflight).
   */
  mountFailures: 'at-once' | { timeoutMs: number };
  /** The pod's events, when they were listed (only for pods kubelet is setting up). */
  events?: readonly CoreV1Event[] | undefined;
}

/**
 * A mount failure still being reported is not current once kubelet has been
 * silent about it this long: its retries come far more often, so the mount is
 * no longer what holds the pod (the Go worker's rule).
 */
export const MOUNT_FAILURE_ACTIVE_WINDOW_MS = 60_000;

function timeOf(value: Date | string | undefined | null): number | undefined {
  if (value === undefined || value === null) return undefined;
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

/** When an event was first reported, from whichever field this Kubernetes version fills. */
function firstSeen(event: CoreV1Event): number | undefined {
  return timeOf(event.firstTimestamp) ?? timeOf(event.eventTime) ?? timeOf(event.lastTimestamp) ?? timeOf(event.metadata?.creationTimestamp);
}

/** When an event was last reported. */
function lastSeen(event: CoreV1Event): number | undefined {
  return (
    timeOf(event.series?.lastObservedTime) ??
    timeOf(event.lastTimestamp) ??
    timeOf(event.eventTime) ??
    timeOf(event.firstTimestamp) ??
    timeOf(event.metadata?.creationTimestamp)
  );
}

/** The pod's mount failure events (kubelet's own cache races left out), oldest report first. */
function mountFailureEvents(events: readonly CoreV1Event[]): CoreV1Event[] {
  return events
    .filter((e) => (e.reason === 'FailedMount' || e.message?.includes('MountVolume.SetUp failed')) && !TRANSIENT_MOUNT_FAILURE.test(e.message ?? ''))
    .map((event, index) => ({ event, index, at: lastSeen(event) ?? Number.NEGATIVE_INFINITY }))
    .sort((a, b) => a.at - b.at || a.index - b.index)
    .map(({ event }) => event);
}

/**
 * Whether mount failures have gone on long enough to fail the task: they
 * started at least `timeoutMs` ago and are still being reported. A pod's age
 * says nothing here (kubelet mounts only once the pod is bound and its images
 * are there), so the events themselves are the clock. Events without any time
 * cannot be aged: they fail the task, as before this grace existed.
 */
export function mountFailureLasted(failures: readonly CoreV1Event[], now: number, timeoutMs: number): boolean {
  if (timeoutMs <= 0) return false;
  const first = failures.map(firstSeen).filter((t) => t !== undefined);
  const last = failures.map(lastSeen).filter((t) => t !== undefined);
  if (first.length === 0 && last.length === 0) return true;
  if (last.length > 0 && now - Math.max(...last) > MOUNT_FAILURE_ACTIVE_WINDOW_MS) return false;
  const started = first.length > 0 ? Math.min(...first) : Math.min(...last);
  return now - started >= timeoutMs;
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

/**
 * Who preempted the pod, when Kubernetes says it did: the scheduler (a
 * DisruptionTarget condition with reason PreemptionByScheduler, set just before
 * it deletes the pod for one of higher priority), or kubelet making room for a
 * critical pod (pod reason `Preempting`, or its DisruptionTarget condition
 * saying so, or its `Preempting` Warning event). An eviction whose message
 * names preemption counts too, as in the Go worker. Other disruptions (node
 * pressure, drain, taints) are not preemptions.
 */
export function preemptedBy(pod: V1Pod, events: readonly CoreV1Event[] = []): { by: string; detail: string } | undefined {
  const status = pod.status ?? {};
  const disruption = (status.conditions ?? []).find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
  if (disruption?.reason === 'PreemptionByScheduler') return { by: 'the scheduler', detail: disruption.message ?? '' };
  // The pod's own reason and message are in every failure message already (details()).
  if (status.reason === 'Preempting') return { by: 'kubelet', detail: '' };
  if (disruption?.reason === 'TerminationByKubelet' && /preempt/i.test(disruption.message ?? '')) return { by: 'kubelet', detail: disruption.message ?? '' };
  if (status.reason?.toLowerCase() === 'evicted' && /preempt/i.test(status.message ?? '')) return { by: 'Kubernetes', detail: '' };
  const event = events.find((e) => e.reason === 'Preempting');
  if (event) return { by: 'kubelet', detail: event.message ?? '' };
  return undefined;
}

/** The first failure a task Pod shows, checked in the Go worker's order (preemption first: the containers' exits it causes say less). */
export function podFailure(pod: V1Pod, options: PodCheckOptions): PodFailure | undefined {
  const { namespace } = options;
  const status = pod.status ?? {};
  const preempted = preemptedBy(pod, options.events);
  if (preempted) {
    return {
      reason: 'pod_preempted',
      message: [
        `${podContext(pod, namespace)} was preempted by ${preempted.by}${preempted.detail ? `: ${preempted.detail}` : ''}`,
        ...details(pod, '', ''),
        'A pod of higher priority needed its place; run the task again, or give task pods a higher priorityClassName in pod_template.',
      ].join('. '),
      exitCode: 0,
    };
  }
  if (status.reason?.toLowerCase() === 'evicted' || status.message?.toLowerCase().includes('evict')) {
    return { reason: 'evicted', message: [`${podContext(pod, namespace)} failed`, ...details(pod, '', '')].join('. '), exitCode: 0 };
  }
  const failing = failingContainer(pod);
  if (failing) {
    const failure = statusFailure(pod, failing.status, failing.kind !== 'regular', namespace, options.imagePullTimeoutMs);
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
    const failures = mountFailureEvents(options.events);
    // The latest report describes what the pod is still stuck on.
    const mount = failures.at(-1);
    const rule = options.mountFailures;
    if (mount && (rule === 'at-once' || mountFailureLasted(failures, options.now, rule.timeoutMs))) {
      return {
        reason: 'volume_mount',
        message: [
          `${podContext(pod, namespace)} failed to mount a volume`,
          `Kubernetes event reason: ${mount.reason ?? ''}`,
          `Kubernetes event message: ${mount.message ?? ''}`,
          ...(rule === 'at-once' ? [] : [`The mount kept failing for volume_mount_timeout (${Math.round(rule.timeoutMs / 1000)} s)`]),
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
