// The server's side of the task-output extension: agent output lines from the
// worker a task runs on, kept in the task's history (events `stdout`/`stderr`,
// read through the same tenant guard as every other event). Bounded per task.
import type { TaskOutputFrame } from '../protocol/task-output.js';
import type { Store } from './store.js';

export const MAX_STORED_OUTPUT_BYTES = 1024 * 1024;
export const OUTPUT_EVENT_KINDS: ReadonlySet<string> = new Set(['stdout', 'stderr']);

export class OutputRecorder {
  /** Bytes kept per task; learned from the store the first time a task sends output. */
  private readonly kept = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly maxBytes = MAX_STORED_OUTPUT_BYTES,
  ) {}

  /** Stores the lines the task's budget allows; returns whether anything was stored. */
  record(taskId: string, lines: TaskOutputFrame['data']['lines']): boolean {
    let used = this.kept.get(taskId) ?? this.store.outputBytes(taskId);
    if (used >= this.maxBytes) return false;
    this.store.transaction(() => {
      for (const line of lines) {
        const size = Buffer.byteLength(line.text);
        if (used + size > this.maxBytes) {
          this.store.addEvent(taskId, 'output_truncated', `output beyond ${this.maxBytes} bytes is not kept; the worker's log has all of it`);
          used = this.maxBytes;
          break;
        }
        this.store.addEvent(taskId, line.stream, line.text);
        used += Math.max(size, 1);
      }
    });
    this.kept.set(taskId, used);
    return true;
  }

  /** The task ended: its budget is in the store if it ever sends again. */
  forget(taskId: string): void {
    this.kept.delete(taskId);
  }
}
