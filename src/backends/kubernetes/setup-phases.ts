// The setup phases of a task's pod, read from the pod's own timestamps (the
// scheduler's and kubelet's, not when the watch happened to deliver them), as
// the Go worker derives them. Pure: `podSetupPhases` reads one snapshot;
// `PodSetupTracker` remembers what was reported, so each phase goes out at
// most once per task however often the pod is seen.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { SetupEventName } from '../../protocol/client-events.js';
import { SETUP_CONTAINER, SIDECAR_COPY_PREFIX, TASK_CONTAINER } from './names.js';

export interface PodPhase {
  name: SetupEventName;
  start: Date;
  finish: Date;
  isError: boolean;
}

/** Go's zero time, which a missing timestamp decodes to there. */
const GO_ZERO_TIME_MS = Date.UTC(1, 0, 1);

/**
 * A pod timestamp: a Date when the list call decoded it, the API server's
 * string when a watch event carried it; undefined when absent or unusable.
 */
function time(value: Date | string | undefined): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const date = new Date(value);
  const ms = date.getTime();
  return Number.isNaN(ms) || ms <= GO_ZERO_TIME_MS ? undefined : date;
}

const terminatedOf = (status: V1ContainerStatus) => status.state?.terminated;

/** A phase, when both ends are known and in order (equal ends: a 0 ms phase). */
function phase(name: SetupEventName, start: Date | undefined, finish: Date | undefined, isError: boolean): PodPhase | undefined {
  if (!start || !finish || finish.getTime() < start.getTime()) return undefined;
  return { name, start, finish, isError };
}

/** When the scheduler bound the pod: the first `PodScheduled=True` condition's transition. */
function scheduledAt(pod: V1Pod): Date | undefined {
  const condition = pod.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'True');
  return condition ? time(condition.lastTransitionTime) : undefined;
}

/** The sidecar-copy init containers, once all ended (or one failed: then at once, as an error). */
function sidecarPrep(pod: V1Pod): PodPhase | undefined {
  const expected = pod.spec?.initContainers?.filter((c) => c.name.startsWith(SIDECAR_COPY_PREFIX)).length ?? 0;
  // Image volumes mode copies nothing: no phase.
  if (expected === 0) return undefined;
  let start: Date | undefined;
  let finish: Date | undefined;
  let failed = false;
  let ended = 0;
  for (const status of pod.status?.initContainerStatuses ?? []) {
    const terminated = terminatedOf(status);
    if (!status.name.startsWith(SIDECAR_COPY_PREFIX) || !terminated) continue;
    ended++;
    if (terminated.exitCode !== 0) failed = true;
    const started = time(terminated.startedAt);
    const finished = time(terminated.finishedAt);
    if (started && (!start || started < start)) start = started;
    if (finished && (!finish || finished > finish)) finish = finished;
  }
  if (!failed && ended < expected) return undefined;
  return phase('setup_worker_sidecar_prep', start, finish, failed);
}

function setupCommand(pod: V1Pod): PodPhase | undefined {
  const status = pod.status?.initContainerStatuses?.find((s) => s.name === SETUP_CONTAINER);
  const terminated = status && terminatedOf(status);
  if (!terminated) return undefined;
  return phase('setup_worker_setup_command', time(terminated.startedAt), time(terminated.finishedAt), terminated.exitCode !== 0);
}

/**
 * From what the task container waited for (the last init container to end;
 * else scheduling; else the pod's creation) to the task container's start,
 * read also from a terminated state, so a container that ran briefly counts.
 */
function containerStart(pod: V1Pod): PodPhase | undefined {
  const task = pod.status?.containerStatuses?.find((s) => s.name === TASK_CONTAINER);
  const started = time(task?.state?.running?.startedAt ?? task?.state?.terminated?.startedAt);
  if (!started) return undefined;
  let anchor: Date | undefined;
  for (const status of pod.status?.initContainerStatuses ?? []) {
    // Native sidecars never terminate while the task runs, so they never move the anchor.
    const finished = time(terminatedOf(status)?.finishedAt);
    if (finished && (!anchor || finished > anchor)) anchor = finished;
  }
  anchor ??= scheduledAt(pod) ?? time(pod.metadata?.creationTimestamp);
  return phase('setup_worker_container_start', anchor, started, false);
}

/** The phases one pod snapshot shows, in the Go worker's order: schedule, sidecar preparation, setup command, container start. */
export function podSetupPhases(pod: V1Pod): PodPhase[] {
  const found = [
    phase('setup_worker_pod_schedule', time(pod.metadata?.creationTimestamp), scheduledAt(pod), false),
    sidecarPrep(pod),
    setupCommand(pod),
    containerStart(pod),
  ];
  return found.filter((p): p is PodPhase => p !== undefined);
}

/** One task's pod phases: each reported once, the first time a snapshot shows it complete. */
export class PodSetupTracker {
  private readonly reported = new Set<SetupEventName>();

  constructor(private readonly report: (phase: PodPhase) => void) {}

  /** Whether that phase was reported already. */
  has(name: SetupEventName): boolean {
    return this.reported.has(name);
  }

  observe(pod: V1Pod): void {
    for (const found of podSetupPhases(pod)) {
      if (this.reported.has(found.name)) continue;
      this.reported.add(found.name);
      this.report(found);
    }
  }
}
