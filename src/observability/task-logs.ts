// Task logs: whether an assignment's output is exported to the collector it
// names (`telemetry_collection` with `logging_enabled`, and the operator's
// `collect_task_logs`), and the reporter that does it. This module is small and
// pure apart from `TaskLogExports.open`, which loads the OpenTelemetry logs
// SDK (./task-logs/reporter.ts) the first time a task needs it.
import type { Logger } from '../log/logger.js';
import type { TaskAssignment } from '../protocol/messages.js';
import { errorMessage } from '../errors/error-message.js';
import type { HttpPoster } from './http-post.js';
import type { TaskLogReporter, TaskLogTarget } from './task-logs/target.js';

export type { TaskLogReporter, TaskLogTarget } from './task-logs/target.js';

/** How long the records of a task may take to go out before its terminal status (and again at its end). */
export const TASK_LOG_FLUSH_MS = 5_000;

export type TaskLogPlan = { kind: 'off' } | { kind: 'unavailable'; reason: string } | { kind: 'on'; target: TaskLogTarget };

/** An http(s) URL with a host and no user info, query or fragment (the Go worker's check). */
function usableEndpoint(text: string): URL | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.hostname === '' || url.username !== '' || url.password !== '' || text.includes('?') || text.includes('#')) return undefined;
  return url;
}

/** The collector's logs URL: the endpoint's path without trailing slashes, then `/v1/logs`. */
export function collectorLogsUrl(endpoint: URL): string {
  const url = new URL(endpoint.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/logs`;
  return url.href;
}

/** Whether (and where) a task's logs are exported. Pure. */
export function taskLogPlan(assignment: TaskAssignment, settings: { collect: boolean; serverRootUrl: string }): TaskLogPlan {
  const telemetry = assignment.telemetry_collection;
  if (!settings.collect || !telemetry?.logging_enabled) return { kind: 'off' };
  const endpoint = usableEndpoint(telemetry.endpoint ?? '');
  if (!endpoint) return { kind: 'unavailable', reason: 'invalid task log collector endpoint' };
  if (!usableEndpoint(settings.serverRootUrl)) return { kind: 'unavailable', reason: 'invalid task identity endpoint' };
  const apiKey = assignment.env_vars?.WARP_API_KEY ?? '';
  const workloadToken = assignment.env_vars?.WARP_WORKLOAD_TOKEN ?? '';
  if (apiKey === '' || workloadToken === '') return { kind: 'unavailable', reason: 'task log reporting requires task API key and workload token' };
  return {
    kind: 'on',
    target: {
      taskId: assignment.task_id,
      executionId: assignment.execution_id ?? '',
      collectorUrl: collectorLogsUrl(endpoint),
      serverRootUrl: settings.serverRootUrl,
      apiKey,
      workloadToken,
    },
  };
}

export interface TaskLogSettings {
  /** `collect_task_logs`: off, and no assignment gets an identity call or an export. */
  collect: boolean;
  serverRootUrl: string;
  workerId: string;
  /** `worker.backend` on every record. */
  backend: string;
  /** The worker's own key: never in a record either. */
  workerApiKey: string;
  /** The worker's poster: every task's calls share its proxy, CA and kept-alive connections. */
  poster: HttpPoster;
}

/** Makes one reporter per task that asks for logs. */
export class TaskLogExports {
  private loading: Promise<typeof import('./task-logs/reporter.js')> | undefined;

  constructor(private readonly settings: TaskLogSettings) {}

  /**
   * The task's reporter, or undefined when its logs are not exported (a reason
   * worth a warning is logged). Never throws: a task runs with or without logs.
   */
  async open(assignment: TaskAssignment, log: Logger): Promise<TaskLogReporter | undefined> {
    const plan = taskLogPlan(assignment, this.settings);
    if (plan.kind === 'off') return undefined;
    if (plan.kind === 'unavailable') {
      log.warn(`Task log reporting unavailable for task ${assignment.task_id}: ${plan.reason}`);
      return undefined;
    }
    try {
      const { OtlpTaskLogReporter } = await (this.loading ??= import('./task-logs/reporter.js'));
      const bootstrap = assignment.telemetry_collection?.bootstrap_token?.token;
      return new OtlpTaskLogReporter({
        target: plan.target,
        // Stricter than the Go worker: the worker's key and the bootstrap token never appear either.
        secrets: [...Object.values(assignment.env_vars ?? {}), this.settings.workerApiKey, ...(bootstrap ? [bootstrap] : [])],
        workerId: this.settings.workerId,
        backend: this.settings.backend,
        poster: this.settings.poster,
        log,
      });
    } catch (error) {
      log.warn(`Task log reporting unavailable for task ${assignment.task_id}: could not initialize task log exporter (${errorMessage(error)})`);
      return undefined;
    }
  }
}
