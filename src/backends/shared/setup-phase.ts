// Times one setup phase of a task (image pull, container start, Job create) for
// TaskRun.setupPhase: it starts now and ends when `done` is called.
import { performance } from 'node:perf_hooks';
import type { SetupEventName } from '../../protocol/client-events.js';
import type { TaskRun } from '../../task/contract.js';

export type PhaseDone = (isError: boolean) => void;

/**
 * Starts timing `name`; `done(isError)` reports it once (later calls do
 * nothing). The duration comes from the monotonic clock, so a wall-clock step
 * during the phase does not make it negative.
 */
export function startPhase(run: Pick<TaskRun, 'setupPhase'>, name: SetupEventName): PhaseDone {
  const report = run.setupPhase;
  if (!report) return () => {};
  const start = new Date();
  const began = performance.now();
  let reported = false;
  return (isError) => {
    if (reported) return;
    reported = true;
    report(name, start, new Date(start.getTime() + Math.floor(performance.now() - began)), isError);
  };
}
