// What the worker core reports for metrics. The exporter behind it is chosen at
// start-up; the core only calls these hooks.
import type { FailurePhase, FailureReason } from '../task/failure.js';

export type TaskResult = 'succeeded' | 'failed' | 'cancelled' | 'dispatched';

export interface WorkerMetrics {
  setConnected(connected: boolean): void;
  setMaxConcurrent(limit: number): void;
  taskClaimed(): void;
  taskRejected(reason: string): void;
  tasksActive(delta: number): void;
  taskFinished(result: TaskResult, durationSeconds: number): void;
  taskFailed(phase: FailurePhase, reason: FailureReason): void;
  reconnect(reason: 'dial_failed' | 'remote_close'): void;
}

export const noMetrics: WorkerMetrics = {
  setConnected() {},
  setMaxConcurrent() {},
  taskClaimed() {},
  taskRejected() {},
  tasksActive() {},
  taskFinished() {},
  taskFailed() {},
  reconnect() {},
};
