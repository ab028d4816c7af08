// Follows one task Job to its end through the shared watch: the per-task state
// machine of the Kubernetes backend. Resolves with what ended it; never throws.
//
//   watching ──Job Complete──────────────→ complete
//      │ ────Job Failed──────────────────→ job-failed
//      │ ────Pod fail-fast (after grace)─→ pod-failed
//      │ ────Job deleted by someone else─→ deleted
//      └─────task signal aborted─────────→ cancelled
import type { CoreV1Event, V1Job, V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../../log/logger.js';
import { jobState, podFailure, podNeedsEvents, type PodFailure } from './classify.js';
import type { KubeClient } from './client.js';
import { failureDisposition, type FailureDisposition } from './job-expiry.js';
import type { FailureObservation } from './failure-details.js';
import type { PodWarningEvents } from './pod-events.js';
import type { SharedTaskWatch } from './task-watch.js';

/** A failure's result carries `observed`: what was seen when it was judged, for its failure details. */
export type MonitorResult =
  | { kind: 'complete' }
  | { kind: 'job-failed'; reason: PodFailure['reason']; message: string; pod?: PodFailure; observed: FailureObservation }
  /** `job`: the Job as last seen (its identity for the expiry), when the watch delivered it. */
  | { kind: 'pod-failed'; failure: PodFailure; podName: string; disposition: FailureDisposition; job: V1Job | undefined; observed: FailureObservation }
  | { kind: 'deleted'; observed: FailureObservation }
  | { kind: 'cancelled' };

export interface MonitorOptions {
  client: KubeClient;
  watch: SharedTaskWatch;
  /** Where a pod's Warning events come from (one list shared by every task asking). */
  events: PodWarningEvents;
  log: Logger;
  jobName: string;
  executionHash: string;
  signal: AbortSignal;
  unschedulableTimeoutMs: number;
  imagePullTimeoutMs: number;
  /** How long a pod may keep failing to mount a volume; 0: never fails the task by itself. */
  volumeMountTimeoutMs: number;
  /** Every state of the task's pods as the watch sees them (the task's log export follows their containers). */
  onPod?: ((pod: V1Pod) => void) | undefined;
  now?: () => number;
}

/** A pod kubelet is mounting for has its events listed once it has been at it this long (most are done sooner)... */
const EVENT_LIST_SETTLE_MS = 10_000;
/** ...and again while it stays so, after this long, doubling up to a minute... */
const EVENT_LIST_INTERVAL_MS = 10_000;
const EVENT_LIST_MAX_INTERVAL_MS = 60_000;
/** ...and at most this often when the pod changes. */
const EVENT_LIST_MIN_GAP_MS = 1_000;

/** What the monitor knows of one of the task's pods (made when the pod is first seen). */
interface PodRecord {
  latest: V1Pod;
  /** When a graced failure (image pull) was first seen, by reason. */
  graceSince?: Map<string, number> | undefined;
  /** Its Warning events, as last read. */
  events?: CoreV1Event[];
  eventsReadAt?: number;
  eventsScheduled?: boolean;
  /** How many times its events were read while kubelet kept setting it up. */
  eventReads?: number;
  /** When kubelet was first seen setting it up. */
  settingUpSince?: number;
}

export function monitorJob(options: MonitorOptions): Promise<MonitorResult> {
  const { client, watch, log, jobName, signal } = options;
  const now = options.now ?? Date.now;
  return new Promise((resolve) => {
    let done = false;
    let unsubscribe: (() => void) | undefined;
    // Made when first needed: most of a thousand running tasks never set a timer.
    let timers: Set<NodeJS.Timeout> | undefined;
    const pods = new Map<string, PodRecord>();
    let latestJob: V1Job | undefined;

    const finish = (result: MonitorResult): void => {
      if (done) return;
      done = true;
      unsubscribe?.();
      signal.removeEventListener('abort', onAbort);
      for (const timer of timers ?? []) clearTimeout(timer);
      resolve(result);
    };
    const later = (ms: number, work: () => void): void => {
      const timer = setTimeout(
        () => {
          timers?.delete(timer);
          if (!done) work();
        },
        Math.max(0, ms),
      );
      (timers ??= new Set()).add(timer);
    };
    /** Looks at a pod again later, as it is then; not once it is gone. */
    const reevaluateLater = (ms: number, name: string): void =>
      later(ms, () => {
        const record = pods.get(name);
        if (record) evaluatePod(record, 'safety_poll');
      });

    /** `source`: the watch delivered the pod (pod_watch), or the monitor looks again on its own schedule (safety_poll). */
    const evaluatePod = (record: PodRecord, source: 'pod_watch' | 'safety_poll'): void => {
      if (done) return;
      const pod = record.latest;
      const name = pod.metadata?.name ?? '';
      const at = now();
      const failure = podFailure(pod, {
        namespace: client.namespace,
        now: at,
        unschedulableTimeoutMs: options.unschedulableTimeoutMs,
        imagePullTimeoutMs: options.imagePullTimeoutMs,
        mountFailures: { timeoutMs: options.volumeMountTimeoutMs },
        events: record.events,
      });
      if (failure?.graceMs !== undefined) {
        record.graceSince ??= new Map();
        const since = record.graceSince.get(failure.reason) ?? at;
        record.graceSince.set(failure.reason, since);
        if (at - since < failure.graceMs) {
          reevaluateLater(since + failure.graceMs - at, name);
          return;
        }
      } else if (!failure) {
        record.graceSince = undefined;
      }
      if (failure) {
        finish({ kind: 'pod-failed', failure, podName: name, disposition: failureDisposition(pod), job: latestJob, observed: { source, job: latestJob, pod } });
        return;
      }
      // Unschedulable is judged against the pod's age: look again when the timeout is reached.
      const unschedulable = pod.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable');
      if (unschedulable && options.unschedulableTimeoutMs > 0 && pod.metadata?.creationTimestamp) {
        const due = new Date(pod.metadata.creationTimestamp).getTime() + options.unschedulableTimeoutMs;
        reevaluateLater(due - at, name);
      }
      if (podNeedsEvents(pod)) checkEventsSoon(record);
    };

    /**
     * Mount failures only show as events. A pod's events are read once kubelet
     * has been mounting for it for 10 s, then when it changes (at most once a
     * second) and after 10, 20, 40, 60, 60 … s while it stays so, each time from
     * the list all waiting pods share (pod-events.ts). A pod that starts
     * normally, or is pulling its image, costs no request.
     */
    const checkEventsSoon = (record: PodRecord): void => {
      const name = record.latest.metadata?.name ?? '';
      const uid = record.latest.metadata?.uid;
      if (!uid || record.eventsScheduled) return;
      record.settingUpSince ??= now();
      const wait = Math.max(0, (record.eventsReadAt ?? 0) + EVENT_LIST_MIN_GAP_MS - now(), record.settingUpSince + EVENT_LIST_SETTLE_MS - now());
      record.eventsScheduled = true;
      later(wait, () => {
        record.eventsScheduled = false;
        record.eventsReadAt = now();
        void options.events.of(uid).then((events) => {
          if (done || pods.get(name) !== record) return;
          if (events) record.events = events;
          evaluatePod(record, 'safety_poll');
          if (!done && podNeedsEvents(record.latest) && !record.eventsScheduled) {
            record.eventsScheduled = true;
            record.eventReads = (record.eventReads ?? 0) + 1;
            later(Math.min(EVENT_LIST_MAX_INTERVAL_MS, EVENT_LIST_INTERVAL_MS * 2 ** (record.eventReads - 1)), () => {
              record.eventsScheduled = false;
              if (pods.get(name) === record && podNeedsEvents(record.latest)) checkEventsSoon(record);
            });
          }
        });
      });
    };

    const onJob = (job: V1Job, deleted: boolean): void => {
      if (done) return;
      if (deleted) {
        if (jobState(job, client.namespace).kind === 'complete') finish({ kind: 'complete' });
        else finish({ kind: 'deleted', observed: { source: 'job_watch', job } });
        return;
      }
      latestJob = job;
      const state = jobState(job, client.namespace);
      if (state.kind === 'complete') finish({ kind: 'complete' });
      else if (state.kind === 'failed') {
        // A pod-level cause says more than the Job's summary.
        const explained = [...pods.values()]
          .map((record) => ({
            pod: record.latest,
            failure: podFailure(record.latest, {
              namespace: client.namespace,
              now: now(),
              unschedulableTimeoutMs: 0,
              imagePullTimeoutMs: 0,
              // The Job is over: nothing is left to wait out, and the mount failure is the best explanation.
              mountFailures: 'at-once',
              events: record.events,
            }),
          }))
          .find(({ failure }) => failure !== undefined);
        const pod = explained?.failure;
        finish({
          kind: 'job-failed',
          reason: pod?.reason ?? state.reason,
          message: pod?.message ?? state.message,
          ...(pod ? { pod } : {}),
          observed: { source: 'job_watch', job, pod: explained?.pod },
        });
      }
    };

    const onPod = (pod: V1Pod, deleted: boolean): void => {
      const name = pod.metadata?.name ?? '';
      if (deleted) {
        pods.delete(name);
        return;
      }
      let record = pods.get(name);
      if (record) record.latest = pod;
      else pods.set(name, (record = { latest: pod }));
      options.onPod?.(pod);
      evaluatePod(record, 'pod_watch');
    };

    const onAbort = (): void => finish({ kind: 'cancelled' });
    if (signal.aborted) {
      resolve({ kind: 'cancelled' });
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    log.debug({ job: jobName }, 'Watching the task Job');
    // The cache is replayed synchronously, so the Job may already be finished here.
    const stop = watch.subscribe(options.executionHash, { job: onJob, pod: onPod });
    if (done) stop();
    else unsubscribe = stop;
  });
}
