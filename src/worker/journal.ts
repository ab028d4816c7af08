// What the worker must not forget across a crash: the statuses not yet
// written to the socket, and the tasks that were running. Kept in one small
// JSON file in the state directory, rewritten (atomically, coalesced) whenever
// either changes. After a SIGKILL the next start delivers the saved statuses
// and reports every task that was running and cannot be picked up again as
// failed, with a reason, instead of leaving the server waiting forever.
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Logger } from '../log/logger.js';
import { OutboundMessageSchema, type OutboundMessage } from '../protocol/messages.js';

const JournalSchema = z.object({
  version: z.literal(1),
  liveTasks: z.array(z.object({ taskId: z.string(), executionId: z.string() })),
  outbox: z.array(OutboundMessageSchema),
});
export type JournalContents = z.infer<typeof JournalSchema>;

export interface LiveTask {
  taskId: string;
  executionId: string;
}

/** The file for one worker id: ids are sanitised, with a hash so two ids never share a file. */
export function journalPath(stateDir: string, workerId: string): string {
  const safe = workerId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  let hash = 0;
  for (const char of workerId) hash = (Math.imul(hash, 31) + char.charCodeAt(0)) >>> 0;
  return join(stateDir, `worker-${safe}-${hash.toString(16)}.json`);
}

/** The message sent for a task that was running when the previous worker process died. */
export function lostTaskFailure(taskId: string): OutboundMessage {
  return {
    type: 'task_failed',
    data: {
      task_id: taskId,
      message:
        'The worker stopped unexpectedly (it was killed or crashed) while this task was running, so the agent was interrupted and its result is unknown. Run the task again; if this repeats, check the worker host for out-of-memory kills or restarts.',
      failure_reason: 'unknown',
    },
  };
}

export class Journal {
  private dirty = false;
  private writing: Promise<void> | undefined;
  private disabled = false;

  constructor(
    readonly path: string,
    private readonly snapshot: () => JournalContents,
    private readonly log: Logger,
  ) {}

  /** What the previous process left, or nothing (a missing or unreadable file is not an error). */
  load(): JournalContents | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      const parsed = JournalSchema.safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data;
    } catch {
      // fall through
    }
    this.log.warn({ path: this.path }, 'Ignoring an unreadable worker journal from a previous run');
    return undefined;
  }

  /** Schedules a rewrite; changes made in the same tick are written once. */
  changed(): void {
    if (this.disabled) return;
    this.dirty = true;
    if (this.writing) return;
    this.writing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  /** Resolves once everything changed so far is on disk. */
  async settled(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private async flush(): Promise<void> {
    while (this.dirty && !this.disabled) {
      this.dirty = false;
      const temporary = `${this.path}.${process.pid}.tmp`;
      try {
        mkdirSync(join(this.path, '..'), { recursive: true, mode: 0o700 });
        await writeFile(temporary, JSON.stringify(this.snapshot()), { mode: 0o600 });
        renameSync(temporary, this.path);
      } catch (error) {
        this.disabled = true;
        this.log.warn(
          { path: this.path, err: (error as Error).message },
          'Cannot write the worker journal; statuses and running tasks will not survive a crash (set --state-dir to a writable directory)',
        );
      }
    }
    this.writing = undefined;
  }
}
