// The local server's side of the run client-events call: how a posted event is
// kept in its task's history and read by people. Setup phases (the Go worker's
// `setup_worker_*` names) are `setup` events; other names a client may send
// are kept as `client_event`. Pure.
import type { ClientEvent } from '../protocol/client-events.js';

/** Client events kept per task at most; the worker sends at most one per setup phase. */
export const MAX_CLIENT_EVENTS_PER_TASK = 64;
/** A posted event is a few hundred bytes: a larger body is refused before it is read. */
export const MAX_CLIENT_EVENT_BODY_BYTES = 16 * 1024;
/** A task key still reports its task's events this long after the task ended (the worker posts them in the background). */
export const LATE_CLIENT_EVENT_MS = 60_000;

export const SETUP_EVENT_KIND = 'setup';
export const OTHER_CLIENT_EVENT_KIND = 'client_event';
export const CLIENT_EVENT_KINDS = [SETUP_EVENT_KIND, OTHER_CLIENT_EVENT_KIND] as const;

const SETUP_PHASE_LABELS: Record<string, string> = {
  setup_worker_job_create: 'Job create',
  setup_worker_pod_schedule: 'pod scheduling',
  setup_worker_image_pull: 'image pull',
  setup_worker_sidecar_prep: 'sidecar preparation',
  setup_worker_setup_command: 'setup command',
  setup_worker_container_start: 'container start',
};

/** The history kind of a posted event. */
export function clientEventKind(name: string): string {
  return name.startsWith('setup_worker_') ? SETUP_EVENT_KIND : OTHER_CLIENT_EVENT_KIND;
}

/** What a phase is called for people ("image pull"); an unknown name as sent. */
export function setupPhaseLabel(name: string): string {
  return SETUP_PHASE_LABELS[name] ?? name;
}

/** "0 ms", "850 ms", "1.2 s", "24.6 s", "2 min 05 s". */
export function formatLatency(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1)} s`;
  const seconds = Math.floor(ms / 1000);
  return `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, '0')} s`;
}

/** The event's line in the task's history: "image pull took 1.2 s", "container start failed after 0.4 s". */
export function clientEventDetail(event: ClientEvent): string {
  const { latency_ms: latency, is_error: failed } = event.payload;
  return `${setupPhaseLabel(event.event_name)} ${failed ? 'failed after' : 'took'} ${formatLatency(latency)}`;
}
