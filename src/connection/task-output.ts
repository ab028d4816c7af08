// The worker's side of the task-output extension: agent output lines, batched
// per task and sent as `task_output` frames while the server announced the
// extension. Bounded: each line is capped, each task sends at most
// MAX_TASK_OUTPUT_BYTES, and lines that cannot be sent (no connection, socket
// busy) are dropped — the worker's own log keeps every line.
import { capOutputLine, MAX_OUTPUT_LINES_PER_FRAME, TASK_OUTPUT_TYPE, type OutputStreamName } from '../protocol/task-output.js';

export const MAX_TASK_OUTPUT_BYTES = 1024 * 1024;
const FLUSH_DELAY_MS = 100;
/** Tasks whose byte count is remembered after they end (a late line stays bounded). */
const REMEMBERED_TASKS = 1_000;

export interface TaskOutputSink {
  /** Whether the current connection accepts task output. */
  enabled(): boolean;
  /** Writes one frame; false when it cannot now (closed, or busy with statuses). */
  send(text: string): boolean;
  /** Removes known secret values. */
  scrub?: (line: string) => string;
}

export class TaskOutputSender {
  private readonly pending = new Map<string, { stream: OutputStreamName; text: string }[]>();
  private readonly sentBytes = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: TaskOutputSink,
    private readonly maxTaskBytes = MAX_TASK_OUTPUT_BYTES,
  ) {}

  line(taskId: string, stream: OutputStreamName, text: string): void {
    if (!this.sink.enabled()) return;
    const used = this.sentBytes.get(taskId) ?? 0;
    if (used >= this.maxTaskBytes) return;
    let line = capOutputLine(this.sink.scrub ? this.sink.scrub(text) : text);
    const size = Buffer.byteLength(line);
    if (used + size > this.maxTaskBytes) line = `[output beyond ${this.maxTaskBytes} bytes is not sent; the worker's log has all of it]`;
    this.remember(taskId, used + Math.max(size, 1));
    const lines = this.pending.get(taskId) ?? [];
    lines.push({ stream, text: line });
    this.pending.set(taskId, lines);
    if (lines.length >= MAX_OUTPUT_LINES_PER_FRAME) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_DELAY_MS).unref();
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [taskId, lines] of this.pending) {
      for (let start = 0; start < lines.length; start += MAX_OUTPUT_LINES_PER_FRAME) {
        const frame = JSON.stringify({ type: TASK_OUTPUT_TYPE, data: { task_id: taskId, lines: lines.slice(start, start + MAX_OUTPUT_LINES_PER_FRAME) } });
        if (!this.sink.send(frame)) break;
      }
    }
    this.pending.clear();
  }

  private remember(taskId: string, bytes: number): void {
    this.sentBytes.delete(taskId);
    this.sentBytes.set(taskId, bytes);
    if (this.sentBytes.size > REMEMBERED_TASKS) this.sentBytes.delete(this.sentBytes.keys().next().value!);
  }
}
