// The `task_assignment` frame the local server sends, built from a stored task.
// Pure; the owner is serialised as the Warp server does (`{"Type","Id"}`), and
// the per-task key rides in `env_vars.WARP_API_KEY`.
import type { TaskRecord } from './records.js';
import type { TaskTelemetryFields } from './task-telemetry.js';

export interface AssignmentFrame {
  type: 'task_assignment';
  data: {
    task_id: string;
    execution_id: string;
    task: {
      id: string;
      title: string;
      task_definition: { prompt: string };
      created_at: string;
      updated_at: string;
      owner: { Type: 'TEAM' | 'USER'; Id: number };
      agent_config_snapshot?: Record<string, unknown>;
    };
    env_vars: Record<string, string>;
    telemetry_collection?: TaskTelemetryFields['telemetryCollection'];
  };
}

/** `telemetry`: the task's workload token and where its logs go (the server serves both calls). */
export function buildAssignment(task: TaskRecord, executionId: string, taskKey: string, telemetry?: TaskTelemetryFields): AssignmentFrame {
  return {
    type: 'task_assignment',
    data: {
      task_id: task.id,
      execution_id: executionId,
      task: {
        id: task.id,
        title: task.title,
        task_definition: { prompt: task.prompt },
        // RFC 3339 without fractional seconds, as the Warp server sends them.
        created_at: task.createdAt.replace(/\.\d+Z$/, 'Z'),
        updated_at: task.updatedAt.replace(/\.\d+Z$/, 'Z'),
        owner: { Type: task.owner.type, Id: task.owner.id },
        ...(task.agentConfig ? { agent_config_snapshot: { ...task.agentConfig } } : {}),
      },
      env_vars: { WARP_API_KEY: taskKey, ...(telemetry ? { WARP_WORKLOAD_TOKEN: telemetry.workloadToken } : {}) },
      ...(telemetry ? { telemetry_collection: telemetry.telemetryCollection } : {}),
    },
  };
}

export function buildCancellation(taskId: string): { type: 'task_cancellation'; data: { task_id: string } } {
  return { type: 'task_cancellation', data: { task_id: taskId } };
}
