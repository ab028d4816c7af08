// A small client of the local server's HTTP API, used by `oz-worker task` and
// `oz-worker local`. Errors carry the server's sentence, or say how to reach it.
// Requests honour HTTP(S)_PROXY / NO_PROXY like every other connection the worker makes.
import { commandHint } from './command-hint.js';
import { EnvHttpProxyAgent, fetch, type Response } from 'undici';
import type { FailureDetails } from '../protocol/messages.js';

const dispatcher = new EnvHttpProxyAgent();

export class ApiClientError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface TaskJson {
  id: string;
  title: string;
  prompt: string;
  owner: { type: 'TEAM' | 'USER'; id: number };
  agent_config: Record<string, unknown> | null;
  device_id: string | null;
  state: string;
  worker_id: string | null;
  execution_id: string | null;
  /** The execution id the worker's final status named (null: it named none). */
  reported_execution_id?: string | null;
  attempts: number;
  exit_code: number | null;
  failure_reason: string | null;
  message: string | null;
  created_at: string;
  updated_at: string;
  assigned_at: string | null;
  claimed_at: string | null;
  finished_at: string | null;
  cancel_requested_at: string | null;
  /** Why a queued task waits (no worker for its owner, device not pinned, all busy…). */
  waiting_reason?: string | null;
  /** A failed task's structured details (one task's views only; null when it has none). */
  failure_details?: FailureDetails | null;
}

export interface TaskEventJson {
  seq: number;
  at: string;
  kind: string;
  detail: string;
  /** Structured content of some events (a setup phase: the client event as its worker posted it). */
  data?: Record<string, unknown>;
}

export const TERMINAL_TASK_STATES = new Set(['completed', 'failed', 'cancelled', 'lost']);

export class ApiClient {
  constructor(
    readonly serverUrl: string,
    private readonly apiKey: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.serverUrl), {
        method,
        headers: { Authorization: `Bearer ${this.apiKey}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
        body: body === undefined ? null : JSON.stringify(body),
        signal: signal ?? null,
        dispatcher,
      });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      throw new ApiClientError(
        `cannot reach the oz-worker server at ${this.serverUrl}; start it with \`${commandHint('local')}\` (or \`${commandHint('server')}\`), or pass --server`,
      );
    }
    const text = await response.text();
    let payload: unknown;
    try {
      payload = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new ApiClientError(
        `the server at ${this.serverUrl} answered ${response.status} with something that is not JSON; is --server the oz-worker server?`,
        response.status,
      );
    }
    if (!response.ok) {
      const { error, code } = (payload ?? {}) as { error?: string; code?: string };
      throw new ApiClientError(error ?? `request failed with HTTP ${response.status}`, response.status, code);
    }
    return payload as T;
  }

  submitTask(body: Record<string, unknown>): Promise<TaskJson> {
    return this.request('POST', '/api/v1/tasks', body);
  }
  listTasks(state?: string): Promise<{ tasks: TaskJson[] }> {
    return this.request('GET', `/api/v1/tasks${state ? `?state=${encodeURIComponent(state)}` : ''}`);
  }
  task(id: string): Promise<TaskJson> {
    return this.request('GET', `/api/v1/tasks/${encodeURIComponent(id)}`);
  }
  cancelTask(id: string): Promise<{ outcome: string; task: TaskJson }> {
    return this.request('POST', `/api/v1/tasks/${encodeURIComponent(id)}/cancel`);
  }
  events(id: string, after: number, waitSeconds: number, signal?: AbortSignal): Promise<{ task: TaskJson; events: TaskEventJson[] }> {
    return this.request('GET', `/api/v1/tasks/${encodeURIComponent(id)}/events?after=${after}&wait=${waitSeconds}`, undefined, signal);
  }

  /** Calls `onEvent` for each event of the task until it ends; returns the final task. */
  async watch(id: string, onEvent: (event: TaskEventJson, task: TaskJson) => void, signal?: AbortSignal): Promise<TaskJson> {
    let after = 0;
    for (;;) {
      const { task, events } = await this.events(id, after, 25, signal);
      for (const event of events) {
        onEvent(event, task);
        after = event.seq;
      }
      if (TERMINAL_TASK_STATES.has(task.state)) {
        // The final event may have landed between the read of events and of the task.
        const rest = await this.events(id, after, 0, signal);
        for (const event of rest.events) onEvent(event, rest.task);
        return rest.task;
      }
    }
  }
}
