// How `oz-worker task` and `oz-worker admin` print for people: tables with a
// header whose columns fit the rows, and event lines whose columns line up
// however long an event's kind is.
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
