// The shapes of what the local server's database holds (tasks, their events,
// keys and who they speak for, users, teams, devices, pins), apart from the
// store that reads and writes them, so rules about them (access.ts) need not
// import the store.
import type { AgentConfig } from './api-schemas.js';

export type OwnerType = 'TEAM' | 'USER';
export interface TaskOwner {
  type: OwnerType;
  id: number;
}

export const TASK_STATES = ['queued', 'assigned', 'running', 'completed', 'failed', 'cancelled', 'lost'] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set(['completed', 'failed', 'cancelled', 'lost']);

export interface TaskRecord {
  id: string;
  title: string;
  prompt: string;
  owner: TaskOwner;
  agentConfig: AgentConfig | undefined;
  /** A TEAM task routed to one device. */
  deviceId: string | undefined;
  state: TaskState;
  workerId: string | undefined;
  executionId: string | undefined;
  /** The execution id the worker's final status named; undefined when it named none. */
  reportedExecutionId: string | undefined;
  attempts: number;
  exitCode: number | undefined;
  failureReason: string | undefined;
  message: string | undefined;
  createdAt: string;
  updatedAt: string;
  assignedAt: string | undefined;
  claimedAt: string | undefined;
  finishedAt: string | undefined;
  cancelRequestedAt: string | undefined;
}

/** A queued task as a queue pass sees it: no prompt, no configuration. */
export interface QueuedTask {
  id: string;
  owner: TaskOwner;
  deviceId: string | undefined;
}

export interface TaskEvent {
  seq: number;
  taskId: string;
  at: string;
  kind: string;
  detail: string;
  /** Structured content, for the events that have it (a reported setup phase: the event as posted). */
  data?: Record<string, unknown>;
}

/** Who a key speaks for. Task keys speak for the task's owner. */
export type Principal =
  | { kind: 'admin'; keyId: number }
  | { kind: 'user'; keyId: number; userId: number }
  | { kind: 'team'; keyId: number; teamId: number }
  | {
      kind: 'task';
      keyId: number;
      taskId: string;
      owner: TaskOwner;
      /** Set only where a route takes a task key shortly after it was revoked (the task ended). */
      revokedAt?: string;
    };

export interface User {
  id: number;
  name: string;
  createdAt: string;
}
export interface Team {
  id: number;
  name: string;
  defaultAgentConfig: AgentConfig | undefined;
  createdAt: string;
}
export interface KeyInfo {
  id: number;
  prefix: string;
  kind: Principal['kind'];
  userId: number | undefined;
  teamId: number | undefined;
  taskId: string | undefined;
  name: string;
  createdAt: string;
  revokedAt: string | undefined;
}
export interface Device {
  id: string;
  userId: number;
  name: string;
  createdAt: string;
}
export interface Pin {
  id: number;
  deviceId: string;
  teamId: number;
  createdAt: string;
  archivedAt: string | undefined;
}
