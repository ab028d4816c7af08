// How `oz-worker task` and `oz-worker admin` print for people: tables with a
// header whose columns fit the rows, event lines whose columns line up
// however long an event's kind is, and a failure's details in a few lines.
import type { FailureDetails, KubernetesFailureDetails } from '../protocol/messages.js';
import type { TaskEventJson, TaskJson } from './api-client.js';
import { ClientEventSchema } from '../protocol/client-events.js';
import { formatLatency, SETUP_EVENT_KIND, setupPhaseLabel } from '../server/client-events.js';

/** The widest event kind the server writes (`worker_disconnected`), plus room for one more character. */
export const EVENT_KIND_WIDTH = 20;

/** "45s", "12m", "3h", "2d": how long ago, as the table's AGE column shows it. */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

/** The task list: ID, STATE, OWNER, AGE (since created), TITLE, columns as wide as their widest cell. */
export function formatTaskTable(tasks: readonly TaskJson[], now: Date): string {
  const rows = tasks.map((task) => [
    task.id,
    task.state,
    `${task.owner.type} ${task.owner.id}`,
    formatAge(now.getTime() - Date.parse(task.created_at)),
    task.title.replace(/\s+/g, ' '),
  ]);
  return formatTable(['ID', 'STATE', 'OWNER', 'AGE', 'TITLE'], rows);
}

/** A header and rows, each column as wide as its widest cell, two spaces apart; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const table = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...table.map((row) => (row[column] ?? '').length)));
  return table
    .map((row) => header.map((_, column) => (column === header.length - 1 ? (row[column] ?? '') : (row[column] ?? '').padEnd(widths[column]!))).join('  '))
    .join('\n');
}

/** The longest setup phase label (`sidecar preparation`), plus room: the durations line up. */
export const SETUP_LABEL_WIDTH = 20;

/**
 * One event of `task watch`: time, kind, detail. A setup phase reads as its
 * name and how long it took, the durations in one column.
 */
export function formatEvent(event: TaskEventJson): string {
  const head = `${event.at.slice(11, 19)}  ${event.kind.padEnd(EVENT_KIND_WIDTH)} `;
  const phase = event.kind === SETUP_EVENT_KIND ? ClientEventSchema.safeParse(event.data) : undefined;
  if (!phase?.success) return `${head}${event.detail}`;
  const { event_name: name, payload } = phase.data;
  return `${head}${setupPhaseLabel(name).padEnd(SETUP_LABEL_WIDTH)} ${formatLatency(payload.latency_ms)}${payload.is_error ? '  (failed)' : ''}`;
}

type Condition = NonNullable<NonNullable<KubernetesFailureDetails['pod']>['conditions']>[number];

/** Text from a worker, safe to print on a terminal: control characters shown as `?`. */
const printable = (text: string): string => text.replace(/\p{Cc}/gu, '?');

/** `Failed (BackoffLimitExceeded)`, `Ready=False (PodFailed)`: a condition with its reason (`=True` goes without saying). */
function conditionText(condition: Condition): string {
  const status = condition.status === 'True' ? '' : `=${condition.status ?? '?'}`;
  return `${condition.type ?? '?'}${status}${condition.reason ? ` (${condition.reason})` : ''}`;
}

/** Conditions that say why (those without a reason are a pod's routine progress: scheduled, initialized…). */
const telling = (conditions: readonly Condition[] | undefined): Condition[] => (conditions ?? []).filter((condition) => condition.reason);

function containerText(container: NonNullable<KubernetesFailureDetails['container']>): string {
  const who = `${container.name ?? '?'} (${container.kind ?? '?'})`;
  if (container.state === 'waiting') return `${who}: waiting${container.waiting_reason ? ` ${container.waiting_reason}` : ''}`;
  const exit = container.normalized_exit_code ?? container.raw_exit_code;
  // 128 + n is how a process killed by signal n exits (OOMKilled: 137, signal 9).
  const signal = container.signal ?? (exit !== undefined && exit > 128 && exit <= 128 + 64 ? exit - 128 : undefined);
  const parts = [`${who}: ${container.state ?? '?'}${container.termination_reason ? ` ${container.termination_reason}` : ''}`];
  if (exit !== undefined) parts.push(`exit ${exit}${signal !== undefined ? ` (signal ${signal})` : ''}`);
  return parts.join(', ');
}

/**
 * A failure's details in a few readable lines (`task watch`, `task show`), e.g.
 *   kubernetes, seen by pod_watch at 12:00:03
 *   pod oz-task-…-x7k2p: Failed (Evicted); DisruptionTarget (TerminationByKubelet)
 *   container task (regular): terminated OOMKilled, exit 137 (signal 9)
 *   events: 2× Warning FailedMount, Normal Killing
 */
export function formatFailureDetails(details: FailureDetails | null | undefined): string[] {
  const k = details?.kubernetes;
  if (!k) return [];
  const lines = [`kubernetes${k.observation_source ? `, seen by ${k.observation_source}` : ''} at ${k.observed_at.slice(11, 19)}`];
  if (k.job) {
    const conditions = telling(k.job.conditions).map(conditionText);
    lines.push(`job ${k.job.name ?? '?'}${conditions.length > 0 ? `: ${conditions.join(', ')}` : ''}`);
  }
  if (k.pod) {
    const state = [k.pod.phase, k.pod.reason && `(${k.pod.reason})`].filter(Boolean).join(' ');
    const conditions = telling(k.pod.conditions).map(conditionText);
    const deleting = k.pod.deletion_timestamp ? `; being deleted since ${k.pod.deletion_timestamp.slice(11, 19)}` : '';
    lines.push(`pod ${k.pod.name ?? '?'}${state ? `: ${state}` : ''}${conditions.length > 0 ? `; ${conditions.join(', ')}` : ''}${deleting}`);
  }
  if (k.container) lines.push(`container ${containerText(k.container)}`);
  if (k.events?.length) {
    const events = k.events.map((event) => `${event.count && event.count > 1 ? `${event.count}× ` : ''}${event.type ?? '?'} ${event.reason ?? '?'}`);
    lines.push(`events: ${events.join(', ')}`);
  }
  if (k.truncated) lines.push('(cut to fit: more conditions, events or longer reasons than are kept)');
  return lines.map(printable);
}
