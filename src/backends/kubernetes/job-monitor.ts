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
import type { SharedTaskWatch } from './task-watch.js';
import { errorMessage } from '../../errors/error-message.js';

export type MonitorResult =
  | { kind: 'complete' }
  | { kind: 'job-failed'; reason: PodFailure['reason']; message: string; pod?: PodFailure }
  | { kind: 'pod-failed'; failure: PodFailure; podName: string; podEnded: boolean }
  | { kind: 'deleted' }
  | { kind: 'cancelled' };

export interface MonitorOptions {
  client: KubeClient;
  watch: SharedTaskWatch;
  log: Logger;
  jobName: string;
  executionHash: string;
  signal: AbortSignal;
  unschedulableTimeoutMs: number;
  imagePullTimeoutMs: number;
  now?: () => number;
}

/** A pod kubelet is mounting for has its events listed once it has been at it this long (most are done sooner)... */
const EVENT_LIST_SETTLE_MS = 10_000;
/** ...and again while it stays so, after this long, doubling up to a minute... */
const EVENT_LIST_INTERVAL_MS = 10_000;
const EVENT_LIST_MAX_INTERVAL_MS = 60_000;
/** ...and at most this often when the pod changes. */
const EVENT_LIST_MIN_GAP_MS = 1_000;

export function monitorJob(options: MonitorOptions): Promise<MonitorResult> {
  const { client, watch, log, jobName, signal } = options;
  const now = options.now ?? Date.now;
  return new Promise((resolve) => {
    let done = false;
    let unsubscribe: (() => void) | undefined;
    const timers = new Set<NodeJS.Timeout>();
    /** When a graced failure (image pull) was first seen, per pod and reason. */
    const firstSeen = new Map<string, number>();
    const eventsListedAt = new Map<string, number>();
    const eventsScheduled = new Set<string>();
    const podEvents = new Map<string, CoreV1Event[]>();
    /** When each pod was first seen being set up by kubelet. */
    const settingUpSince = new Map<string, number>();
    const eventLists = new Map<string, number>();
    const latestPods = new Map<string, V1Pod>();

    const finish = (result: MonitorResult): void => {
      if (done) return;
      done = true;
      unsubscribe?.();
      signal.removeEventListener('abort', onAbort);
      for (const timer of timers) clearTimeout(timer);
      resolve(result);
    };
    const later = (ms: number, work: () => void): void => {
      const timer = setTimeout(
        () => {
          timers.delete(timer);
          if (!done) work();
        },
        Math.max(0, ms),
      );
      timers.add(timer);
    };

    const evaluatePod = (pod: V1Pod): void => {
      if (done) return;
      const name = pod.metadata?.name ?? '';
      const at = now();
      const failure = podFailure(pod, {
        namespace: client.namespace,
        now: at,
        unschedulableTimeoutMs: options.unschedulableTimeoutMs,
        imagePullTimeoutMs: options.imagePullTimeoutMs,
        events: podEvents.get(name),
      });
      if (failure?.graceMs !== undefined) {
        const key = `${name}:${failure.reason}`;
        const since = firstSeen.get(key) ?? at;
        firstSeen.set(key, since);
        if (at - since < failure.graceMs) {
          later(since + failure.graceMs - at, () => evaluatePod(latestPods.get(name) ?? pod));
          return;
        }
      } else if (!failure) {
        for (const key of firstSeen.keys()) if (key.startsWith(`${name}:`)) firstSeen.delete(key);
      }
      if (failure) {
        finish({
          kind: 'pod-failed',
          failure,
          podName: name,
          podEnded: failure.containerExited === true || pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded',
        });
        return;
      }
      // Unschedulable is judged against the pod's age: look again when the timeout is reached.
      const unschedulable = pod.status?.conditions?.some((c) => c.type === 'PodScheduled' && c.status === 'False' && c.reason === 'Unschedulable');
      if (unschedulable && options.unschedulableTimeoutMs > 0 && pod.metadata?.creationTimestamp) {
        const due = new Date(pod.metadata.creationTimestamp).getTime() + options.unschedulableTimeoutMs;
        later(due - at, () => evaluatePod(latestPods.get(name) ?? pod));
      }
      if (podNeedsEvents(pod)) checkEventsSoon(pod);
    };

    /**
     * Mount failures only show as events. A pod's events are listed once kubelet
     * has been mounting for it for 10 s, then when it changes (at most once a
     * second) and after 10, 20, 40, 60, 60 … s while it stays so. A pod that
     * starts normally, or is pulling its image, costs no request.
     */
    const checkEventsSoon = (pod: V1Pod): void => {
      const name = pod.metadata?.name ?? '';
      const uid = pod.metadata?.uid;
      if (!uid || eventsScheduled.has(name)) return;
      const since = settingUpSince.get(name) ?? now();
      settingUpSince.set(name, since);
      const wait = Math.max(0, (eventsListedAt.get(name) ?? 0) + EVENT_LIST_MIN_GAP_MS - now(), since + EVENT_LIST_SETTLE_MS - now());
      eventsScheduled.add(name);
      later(wait, () => {
        eventsScheduled.delete(name);
        eventsListedAt.set(name, now());
        client
          .listEvents(`involvedObject.uid=${uid}`)
          .then((events) => {
            if (done) return;
            podEvents.set(name, events);
            const current = latestPods.get(name);
            if (!current) return;
            evaluatePod(current);
            if (!done && podNeedsEvents(current) && !eventsScheduled.has(name)) {
              eventsScheduled.add(name);
              const listed = (eventLists.get(name) ?? 0) + 1;
              eventLists.set(name, listed);
              later(Math.min(EVENT_LIST_MAX_INTERVAL_MS, EVENT_LIST_INTERVAL_MS * 2 ** (listed - 1)), () => {
                eventsScheduled.delete(name);
                const latest = latestPods.get(name);
                if (latest && podNeedsEvents(latest)) checkEventsSoon(latest);
              });
            }
          })
          .catch((error: unknown) =>
            log.warn({ pod: name, err: errorMessage(error) }, 'Could not list the events of a task pod; mount failures may go unnoticed until the Job fails'),
          );
      });
    };

    const onJob = (job: V1Job, deleted: boolean): void => {
      if (done) return;
      if (deleted) {
        if (jobState(job, client.namespace).kind === 'complete') finish({ kind: 'complete' });
        else finish({ kind: 'deleted' });
        return;
      }
      const state = jobState(job, client.namespace);
      if (state.kind === 'complete') finish({ kind: 'complete' });
      else if (state.kind === 'failed') {
        // A pod-level cause says more than the Job's summary.
        const pod = [...latestPods.values()]
          .map((p) =>
            podFailure(p, {
              namespace: client.namespace,
              now: now(),
              unschedulableTimeoutMs: 0,
              imagePullTimeoutMs: 0,
              events: podEvents.get(p.metadata?.name ?? ''),
            }),
          )
          .find((f) => f !== undefined);
        finish({ kind: 'job-failed', reason: pod?.reason ?? state.reason, message: pod?.message ?? state.message, ...(pod ? { pod } : {}) });
      }
    };

    const onPod = (pod: V1Pod, deleted: boolean): void => {
      const name = pod.metadata?.name ?? '';
      if (deleted) {
        latestPods.delete(name);
        return;
      }
      latestPods.set(name, pod);
      evaluatePod(pod);
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
