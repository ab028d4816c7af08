// The check a backend makes between the steps of a task: once the task's
// signal fired, the next step is not started.
import { TaskCancelled } from '../../task/failure.js';

export function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new TaskCancelled();
}
