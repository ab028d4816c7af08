// `task_failed.failure_details.kubernetes`: what the worker saw of a failed
// task's Job, pod and failing container, for the server to show structured.
// The Go worker's schema (version 1) and its allow-list: names, uids, phases,
// reasons, exit codes, signals and times; never a free-form message, the
// namespace, the node, an image or a runtime id, nor an event's controller,
// component or host. Reasons are cut to 256 bytes, conditions to 16 each,
// events to the 10 newest; and, stricter than the Go worker (which only tests
// it), the whole object is kept within what the server stores (32 KiB) by
// dropping events, then conditions. Every cut sets `truncated`. Pure: built
// from the watch cache's projections (cached-objects.ts) and the events listed.
import type { CoreV1Event, V1ContainerStatus, V1Job, V1Pod } from '@kubernetes/client-node';
import { type FailureDetails, type KubernetesFailureDetails, MAX_FAILURE_DETAILS_BYTES } from '../../protocol/messages.js';
import { failingContainer, normalizedExitCode } from './classify.js';

export const FAILURE_DETAILS_SCHEMA_VERSION = 1;
export const MAX_REASON_BYTES = 256;
export const MAX_CONDITIONS = 16;
export const MAX_EVENTS = 10;

/**
 * Which observation found the failure: a pod update the watch delivered
 * (`pod_watch`), a Job update (`job_watch`), or the worker looking again on its
 * own schedule — the unschedulable timeout, the end of an image pull's grace,
 * a mount check's event list (`safety_poll`, the Go worker's periodic look).
 */
export type ObservationSource = 'pod_watch' | 'job_watch' | 'safety_poll';

/** What the backend saw when it judged the task failed (the cache's projections). */
export interface FailureObservation {
  /** Absent when nothing was observed (the Job could not be created). */
  source?: ObservationSource | undefined;
  job?: V1Job | undefined;
  /** The pod the failure is about; its failing container is found by the Go worker's rule. */
  pod?: V1Pod | undefined;
}

type Condition = NonNullable<NonNullable<KubernetesFailureDetails['job']>['conditions']>[number];
type ContainerDetails = NonNullable<KubernetesFailureDetails['container']>;
type EventDetails = NonNullable<KubernetesFailureDetails['events']>[number];

/** Job conditions that say how it ended; the others (Suspended, SuccessCriteriaMet…) are left out. */
const JOB_CONDITION_TYPES = new Set(['Complete', 'Failed', 'FailureTarget']);

/** Builds the projection while noting whether anything was cut. */
class Projection {
  truncated = false;

  /** At most 256 bytes of UTF-8, cut back to a whole character (ill-formed text made well-formed first). */
  reason(value: string | undefined): string | undefined {
    if (value === undefined || value === '') return undefined;
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length <= MAX_REASON_BYTES) return bytes.toString('utf8');
    this.truncated = true;
    let end = MAX_REASON_BYTES;
    // Back off over continuation bytes (10xxxxxx) to the start of the cut character.
    while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
    return bytes.subarray(0, end).toString('utf8');
  }

  conditions(
    conditions: readonly { type: string; status: string; reason?: string; lastTransitionTime?: Date }[] | undefined,
    keep: (type: string) => boolean = () => true,
  ): Condition[] | undefined {
    const out: Condition[] = [];
    for (const condition of conditions ?? []) {
      if (!keep(condition.type)) continue;
      if (out.length === MAX_CONDITIONS) {
        this.truncated = true;
        break;
      }
      out.push(
        defined<Condition>({
          type: condition.type || undefined,
          status: condition.status || undefined,
          reason: this.reason(condition.reason),
          last_transition_time: time(condition.lastTransitionTime),
        }),
      );
    }
    return out.length > 0 ? out : undefined;
  }

  container(pod: V1Pod): ContainerDetails | undefined {
    const failing = failingContainer(pod);
    if (!failing) return undefined;
    return defined<ContainerDetails>({ kind: failing.kind, name: failing.status.name || undefined, ...this.state(failing.status) });
  }

  /** The container's current state, never its lastState. */
  private state(status: V1ContainerStatus): Partial<ContainerDetails> {
    const { terminated, waiting } = status.state ?? {};
    if (terminated) {
      return {
        state: 'terminated',
        termination_reason: this.reason(terminated.reason),
        raw_exit_code: terminated.exitCode,
        normalized_exit_code: normalizedExitCode(terminated),
        signal: terminated.signal !== undefined && terminated.signal > 0 ? terminated.signal : undefined,
        started_at: time(terminated.startedAt),
        finished_at: time(terminated.finishedAt),
      };
    }
    return { state: 'waiting', waiting_reason: this.reason(waiting?.reason) };
  }

  /** Warnings and `Killing`, newest first, the 10 newest. */
  events(events: readonly CoreV1Event[]): EventDetails[] | undefined {
    const kept = events
      .filter((e) => e.type === 'Warning' || e.reason === 'Killing')
      .map((event, index) => ({ event, index, last: lastObserved(event) }))
      // Stable: events observed at the same time keep the order they were listed in.
      .sort((a, b) => epochMs(b.last) - epochMs(a.last) || a.index - b.index);
    if (kept.length > MAX_EVENTS) this.truncated = true;
    const out = kept.slice(0, MAX_EVENTS).map(({ event, last }) =>
      defined<EventDetails>({
        type: this.reason(event.type),
        reason: this.reason(event.reason),
        count: (event.series ? event.series.count : event.count) || undefined,
        first_observed_at: time(event.firstTimestamp ?? event.eventTime ?? event.metadata?.creationTimestamp),
        last_observed_at: time(last),
      }),
    );
    return out.length > 0 ? out : undefined;
  }
}

/** When an event was last seen: its series, else its last report, its event time, its creation. */
function lastObserved(event: CoreV1Event): Date | string | undefined {
  // Typed as Dates, but the client leaves MicroTime fields (eventTime, series.lastObservedTime) as the API's strings.
  const observed: Date | string | undefined = event.series?.lastObservedTime ?? event.lastTimestamp ?? event.eventTime ?? event.metadata?.creationTimestamp;
  return observed ?? undefined;
}

/** Milliseconds since the epoch of a time as a Date or as the API's text; 0 for none or an unreadable one. */
function epochMs(value: Date | string | undefined): number {
  if (value === undefined) return 0;
  const ms = (value instanceof Date ? value : new Date(value)).getTime();
  return Number.isNaN(ms) ? 0 : ms;
}

/** RFC 3339 (UTC); undefined for no time or the zero time the API sometimes sends. */
function time(value: Date | string | undefined | null): string | undefined {
  if (value === undefined || value === null) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  const ms = date.getTime();
  if (Number.isNaN(ms) || ms <= ZERO_TIME_MS) return undefined;
  return date.toISOString();
}
/** Go's zero time (0001-01-01T00:00:00Z), which a decoder may turn an empty time into. */
const ZERO_TIME_MS = Date.UTC(1, 0, 1) - 1;

/** `source` without its undefined fields: the wire leaves absent fields out. */
function defined<T extends object>(source: { [K in keyof T]?: T[K] | undefined }): T {
  const out: Partial<T> = {};
  for (const key of Object.keys(source) as (keyof T)[]) if (source[key] !== undefined) out[key] = source[key] as T[typeof key];
  return out as T;
}

const encodedSize = (details: KubernetesFailureDetails): number => Buffer.byteLength(JSON.stringify({ kubernetes: details } satisfies FailureDetails));

/**
 * Keeps the details within what the server stores: drops the oldest events one
 * by one, then the pod's conditions and the Job's from the last, and if even
 * that is not enough (names longer than Kubernetes allows) keeps only what
 * says when and how it was observed.
 */
function withinServerLimit(details: KubernetesFailureDetails): KubernetesFailureDetails {
  if (encodedSize(details) <= MAX_FAILURE_DETAILS_BYTES) return details;
  const cut = { ...details, truncated: true };
  const shrinkable = [cut.events, cut.pod?.conditions, cut.job?.conditions];
  for (const list of shrinkable) {
    while (list && list.length > 0) {
      list.pop();
      if (encodedSize(cut) <= MAX_FAILURE_DETAILS_BYTES) return tidy(cut);
    }
  }
  const fits = tidy(cut);
  if (encodedSize(fits) <= MAX_FAILURE_DETAILS_BYTES) return fits;
  return defined<KubernetesFailureDetails>({
    schema_version: details.schema_version,
    observation_source: details.observation_source,
    observed_at: details.observed_at,
    truncated: true,
  });
}

/** Lists emptied by the cut are left out, as absent ones are. */
function tidy(details: KubernetesFailureDetails): KubernetesFailureDetails {
  if (details.events?.length === 0) delete details.events;
  if (details.pod?.conditions?.length === 0) delete details.pod.conditions;
  if (details.job?.conditions?.length === 0) delete details.job.conditions;
  return details;
}

/**
 * The details of a Kubernetes task failure. `events` are those listed about its
 * pod and Job (undefined when they could not be listed: the details go without).
 */
export function kubernetesFailureDetails(observation: FailureObservation, events: readonly CoreV1Event[] | undefined, now: Date): KubernetesFailureDetails {
  const projection = new Projection();
  const { job, pod } = observation;
  const details = defined<KubernetesFailureDetails>({
    schema_version: FAILURE_DETAILS_SCHEMA_VERSION,
    observation_source: observation.source,
    observed_at: now.toISOString(),
    job:
      job &&
      defined<NonNullable<KubernetesFailureDetails['job']>>({
        name: job.metadata?.name || undefined,
        uid: job.metadata?.uid || undefined,
        conditions: projection.conditions(job.status?.conditions, (type) => JOB_CONDITION_TYPES.has(type)),
      }),
    pod:
      pod &&
      defined<NonNullable<KubernetesFailureDetails['pod']>>({
        name: pod.metadata?.name || undefined,
        uid: pod.metadata?.uid || undefined,
        phase: pod.status?.phase || undefined,
        reason: projection.reason(pod.status?.reason),
        deletion_timestamp: time(pod.metadata?.deletionTimestamp),
        conditions: projection.conditions(pod.status?.conditions),
      }),
    container: pod && projection.container(pod),
    events: events && projection.events(events),
  });
  if (projection.truncated) details.truncated = true;
  return withinServerLimit(details);
}

/** The uids whose events the details report: the pod's, then the Job's. */
export function observedUids(observation: FailureObservation): string[] {
  const uids = [observation.pod?.metadata?.uid, observation.job?.metadata?.uid].filter((uid): uid is string => Boolean(uid));
  return [...new Set(uids)];
}
