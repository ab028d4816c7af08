// How a backend ends a task that holds resources: the body runs, then cleanup
// starts however the body ended. The cleanup is handed to `run.afterOutcome`
// when given (the worker reports the outcome while resources go away);
// otherwise the outcome waits for it.
import type { TaskRun } from '../../task/contract.js';

/**
 * Runs `body`, then `startCleanup` (also when `body` rejects) and returns what
 * `body` returned or rethrows what it threw. `startCleanup` must return a
 * promise that does not reject: its failures are the backend's to log.
 */
export async function withCleanup<T>(run: Pick<TaskRun, 'afterOutcome'>, body: () => Promise<T>, startCleanup: () => Promise<void>): Promise<T> {
  try {
    return await body();
  } finally {
    const cleanup = startCleanup();
    if (run.afterOutcome) run.afterOutcome(cleanup);
    else await cleanup;
  }
}
