// The run client-events call: besides its frames, the worker tells the
// server's HTTP API how long each setup phase of a task took
// (`POST {server_root}/api/v1/agent/runs/{task_id}/client-events`, one event
// per request, authenticated with the task's own key). The Go worker's later
// versions send it (internal/worker/setup_events.go); docs/PROTOCOL.md has the
// fields and the rules.
import { z } from 'zod';

/** The setup phases, named as on the wire. */
export const SETUP_EVENT_NAMES = [
  'setup_worker_image_pull',
  'setup_worker_sidecar_prep',
  'setup_worker_container_start',
  'setup_worker_job_create',
  'setup_worker_pod_schedule',
  'setup_worker_setup_command',
] as const;
export type SetupEventName = (typeof SETUP_EVENT_NAMES)[number];

export const CLIENT_EVENTS_PATH_PREFIX = '/api/v1/agent/runs/';
export const CLIENT_EVENTS_PATH_SUFFIX = '/client-events';
/** The header naming the run (its task id), as Go sends it. */
export const CLOUD_AGENT_ID_HEADER = 'X-Warp-Cloud-Agent-ID';
/** The assignment's workload token, sent only when it has a non-empty one. */
export const WORKLOAD_TOKEN_HEADER = 'X-Warp-Ambient-Workload-Token';

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const timestamp = z.string().max(40).regex(RFC3339, 'must be an RFC 3339 timestamp');

/**
 * One event as the body carries it. Other clients may send other event names,
 * so any short snake_case name is taken; unknown fields are dropped.
 */
export const ClientEventSchema = z.object({
  event_uuid: z.uuid(),
  event_name: z
    .string()
    .max(64)
    .regex(/^[a-z][a-z0-9_]*$/, 'must be a snake_case event name'),
  timestamp,
  payload: z.object({
    start_ts: timestamp,
    finish_ts: timestamp,
    latency_ms: z.int().nonnegative(),
    is_error: z.boolean(),
  }),
});
export type ClientEvent = z.infer<typeof ClientEventSchema>;

/**
 * A time as Go's `time.Time` encodes to JSON (RFC 3339, the fraction without
 * trailing zeros), in UTC: `2026-08-12T15:35:24.598Z`, `2026-08-12T15:35:00Z`.
 */
export function goTime(date: Date): string {
  return date.toISOString().replace(/\.?0+Z$/, 'Z');
}

/** The body of one setup event: finish is also the event's timestamp; latency is whole milliseconds, truncated. */
export function clientEventBody(name: string, start: Date, finish: Date, isError: boolean, eventUuid: string): ClientEvent {
  return {
    event_uuid: eventUuid,
    event_name: name,
    timestamp: goTime(finish),
    payload: { start_ts: goTime(start), finish_ts: goTime(finish), latency_ms: Math.trunc(finish.getTime() - start.getTime()), is_error: isError },
  };
}

/**
 * A task id as one path segment, escaped as Go's `url.PathEscape` escapes it
 * (unreserved characters and `$&+:=@` stay as they are).
 */
export function pathEscape(segment: string): string {
  return encodeURIComponent(segment)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%(24|26|2B|3A|3D|40)/g, (escaped) => decodeURIComponent(escaped));
}

/** Where a task's events go: the server root without its trailing slashes, then the run's path. */
export function clientEventsUrl(serverRootUrl: string, taskId: string): string {
  return `${serverRootUrl.replace(/\/+$/, '')}${CLIENT_EVENTS_PATH_PREFIX}${pathEscape(taskId)}${CLIENT_EVENTS_PATH_SUFFIX}`;
}
