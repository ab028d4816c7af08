// What the shared watches keep of each Job and Pod: only the fields the backend
// reads (classify.ts, job-monitor.ts, task-watch.ts, the log collection, a
// failure's details (failure-details.ts) and the setup phases (setup-phases.ts)),
// plus what the informer needs to key and resume (name, namespace,
// resourceVersion). A full object from the API server is several kilobytes
// (spec, managedFields, status details); a thousand running tasks hold one Job
// and one Pod each. Pure: a new object, the input is left alone.
import type {
  V1Container,
  V1ContainerState,
  V1ContainerStatus,
  V1Job,
  V1JobCondition,
  V1ObjectMeta,
  V1Pod,
  V1PodCondition,
  V1PodSpec,
} from '@kubernetes/client-node';
import { LABEL_EXECUTION_HASH } from './names.js';

/** Labels read from cached objects: the execution a Job or Pod belongs to, and a pod's Job. */
const KEPT_LABELS = [LABEL_EXECUTION_HASH, 'job-name'];

/** `source` without its undefined fields (so a projection has no keys the object lacked). */
function compact<T extends object>(source: { [K in keyof T]?: T[K] | undefined }): T {
  const out: Partial<T> = {};
  for (const key of Object.keys(source) as (keyof T)[]) if (source[key] !== undefined) out[key] = source[key] as T[typeof key];
  return out as T;
}

function metadataOf(metadata: V1ObjectMeta | undefined, withCreation: boolean): V1ObjectMeta | undefined {
  if (!metadata) return undefined;
  let labels: Record<string, string> | undefined;
  for (const key of KEPT_LABELS) {
    const value = metadata.labels?.[key];
    if (value !== undefined) (labels ??= {})[key] = value;
  }
  return compact<V1ObjectMeta>({
    name: metadata.name,
    namespace: metadata.namespace,
    uid: metadata.uid,
    resourceVersion: metadata.resourceVersion,
    labels,
    creationTimestamp: withCreation ? metadata.creationTimestamp : undefined,
  });
}

const conditionsOf = <C extends V1JobCondition | V1PodCondition>(conditions: C[] | undefined): C[] | undefined =>
  conditions?.map((c) => compact<V1JobCondition>({ type: c.type, status: c.status, reason: c.reason, message: c.message }) as C);

function stateOf(state: V1ContainerState | undefined): V1ContainerState | undefined {
  if (!state) return undefined;
  const { terminated, waiting, running } = state;
  return compact<V1ContainerState>({
    terminated:
      terminated &&
      compact<NonNullable<V1ContainerState['terminated']>>({
        exitCode: terminated.exitCode,
        signal: terminated.signal,
        reason: terminated.reason,
        message: terminated.message,
      }),
    waiting: waiting && compact<NonNullable<V1ContainerState['waiting']>>({ reason: waiting.reason, message: waiting.message }),
    // Only its presence is read here (the container runs); its start time is kept below, with the setup times.
    running: running && {},
  });
}

const statusesOf = (statuses: V1ContainerStatus[] | undefined): V1ContainerStatus[] | undefined =>
  statuses?.map((s) => compact<V1ContainerStatus>({ name: s.name, state: stateOf(s.state) }));

const containersOf = (containers: V1Container[] | undefined): V1Container[] | undefined =>
  containers?.map((c) => compact<V1Container>({ name: c.name, restartPolicy: c.restartPolicy }));

/** A Job as the watch keeps it: identity, the execution label, its conditions. */
export function cachedJob(job: V1Job): V1Job {
  const cached = compact<V1Job>({
    metadata: metadataOf(job.metadata, false),
    status: job.status && compact<NonNullable<V1Job['status']>>({ conditions: conditionsOf(job.status.conditions) }),
  });
  return withTimes(job, cached);
}

/** A Pod as the watch keeps it: identity, labels, creation time, container names, and the status classify.ts reads. */
export function cachedPod(pod: V1Pod): V1Pod {
  const { spec, status } = pod;
  const cached = compact<V1Pod>({
    metadata: metadataOf(pod.metadata, true),
    spec:
      spec &&
      compact<V1PodSpec>({ nodeName: spec.nodeName, initContainers: containersOf(spec.initContainers), containers: containersOf(spec.containers) ?? [] }),
    status:
      status &&
      compact<NonNullable<V1Pod['status']>>({
        phase: status.phase,
        reason: status.reason,
        message: status.message,
        conditions: conditionsOf(status.conditions),
        initContainerStatuses: statusesOf(status.initContainerStatuses),
        containerStatuses: statusesOf(status.containerStatuses),
      }),
  });
  return withTimes(pod, cached);
}

// ---- Times (failure-details.ts, setup-phases.ts) ----------------------------
// Times the verdicts above never read: when each condition last changed (the
// scheduler's PodScheduled among them), when a container started and ended,
// when the pod was marked for deletion. They give a failure's details and the
// task's setup phases. Laid onto the projection made above (conditions and
// container statuses are projected one for one, so indexes match); the rest of
// the object stays out.

type Timed = { lastTransitionTime?: Date };

function copyTransitionTimes(from: readonly Timed[] | undefined, to: readonly Timed[] | undefined): void {
  from?.forEach((condition, i) => {
    const kept = to?.[i];
    if (kept && condition.lastTransitionTime !== undefined) kept.lastTransitionTime = condition.lastTransitionTime;
  });
}

function copyRunTimes(from: readonly V1ContainerStatus[] | undefined, to: readonly V1ContainerStatus[] | undefined): void {
  from?.forEach((status, i) => {
    const running = to?.[i]?.state?.running;
    if (running && status.state?.running?.startedAt !== undefined) running.startedAt = status.state.running.startedAt;
    const source = status.state?.terminated;
    const kept = to?.[i]?.state?.terminated;
    if (!source || !kept) return;
    if (source.startedAt !== undefined) kept.startedAt = source.startedAt;
    if (source.finishedAt !== undefined) kept.finishedAt = source.finishedAt;
  });
}

function withTimes<T extends V1Job | V1Pod>(source: T, cached: T): T {
  copyTransitionTimes(source.status?.conditions, cached.status?.conditions);
  // A Job's status has no container statuses: nothing to copy there.
  const from = (source as V1Pod).status;
  const to = (cached as V1Pod).status;
  copyRunTimes(from?.initContainerStatuses, to?.initContainerStatuses);
  copyRunTimes(from?.containerStatuses, to?.containerStatuses);
  const deletion = source.metadata?.deletionTimestamp;
  if (deletion !== undefined && cached.metadata) cached.metadata.deletionTimestamp = deletion;
  return cached;
}
