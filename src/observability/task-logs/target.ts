// What the worker core holds of one task's log export, and where it goes.
import type { TaskLogs } from '../../task/contract.js';

/** What the core holds of a task's export. */
export interface TaskLogReporter extends TaskLogs {
  /** Sends what is queued, waiting at most `timeoutMs`. */
  flush(timeoutMs?: number): Promise<void>;
  /** Ends the export: what is queued goes out within `timeoutMs`, later records are dropped. */
  shutdown(timeoutMs?: number): Promise<void>;
  /** A setup phase as a log record, with the Go worker's attributes. */
  event(name: string, start: Date, finish: Date, isError: boolean): void;
}

/** Where and as whom one task's logs go. */
export interface TaskLogTarget {
  taskId: string;
  executionId: string;
  /** `{endpoint}/v1/logs`. */
  collectorUrl: string;
  serverRootUrl: string;
  apiKey: string;
  workloadToken: string;
}
