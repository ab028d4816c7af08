// What the next start does with the journal of a worker process that died:
// deliver the statuses it had not written, and report the tasks it was running
// that nothing picks up again.
import type { Outbox } from '../connection/outbox.js';
import type { Logger } from '../log/logger.js';
import type { ResumableTask } from '../task/contract.js';
import { lostTaskFailure, type JournalContents } from './journal.js';

/**
 * Statuses the previous process had not written are sent first; a task it was
 * running that the backend cannot pick up again (a local process died with the
 * worker) is reported failed, unless its result is among those statuses.
 */
export function recoverFromJournal(previous: JournalContents, resumed: readonly ResumableTask[], outbox: Outbox, log: Logger): void {
  for (const message of previous.outbox) outbox.enqueue(message);
  if (previous.outbox.length > 0) log.info({ count: previous.outbox.length }, 'Delivering statuses the previous worker process had not sent');
  const reported = new Set(previous.outbox.filter((m) => m.type === 'task_completed' || m.type === 'task_failed').map((m) => m.data.task_id));
  const followed = new Set(resumed.map((task) => task.taskId));
  for (const task of previous.liveTasks) {
    const { taskId, executionId } = task;
    if (followed.has(taskId) || reported.has(taskId)) continue;
    log.warn({ taskId, executionId }, 'This task was running when the previous worker process stopped unexpectedly; reporting it as failed');
    outbox.enqueue(lostTaskFailure(task));
  }
}
