// Turns one inbound text frame into a typed message, or says precisely why not.
// Never throws: every frame a server can send maps to one of the results below.
import type { z } from 'zod';
import { EnvelopeSchema, TaskAssignmentSchema, TaskCancellationSchema, type TaskAssignment } from './messages.js';
import { mcpServersArgument } from './raw-json.js';
import { errorMessage } from '../errors/error-message.js';
import { describeZodIssues } from '../errors/zod-issues.js';

export type DecodedFrame =
  | { kind: 'assignment'; assignment: TaskAssignment; mcpArgument: string | undefined }
  | { kind: 'cancellation'; taskId: string }
  /** A known type whose payload is invalid; `taskId` (and `executionId`) set when one could be recovered. */
  | { kind: 'invalid'; type: string; taskId: string | undefined; executionId?: string | undefined; problem: string }
  | { kind: 'unparseable'; problem: string }
  | { kind: 'unknown'; type: string };

/** At most five issues, as a sender reads them: `task.id: is missing`. */
export function describeIssues(error: z.ZodError): string {
  return describeZodIssues(error.issues, {
    limit: 5,
    describe: (issue) => {
      const text = issue.message.replace(/^Invalid input: /, '');
      return /received undefined$/.test(text) ? 'is missing' : text;
    },
  });
}

/** Finds `data.<name>` case-insensitively (the last duplicate wins), if it is a non-empty string. */
function recoverString(data: unknown, name: 'task_id' | 'execution_id'): string | undefined {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return undefined;
  let found: unknown;
  for (const [key, value] of Object.entries(data)) if (key.toLowerCase() === name) found = value;
  return typeof found === 'string' && found.length > 0 ? found : undefined;
}

export function decodeFrame(text: string): DecodedFrame {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return { kind: 'unparseable', problem: `frame is not valid JSON (${errorMessage(error)})` };
  }
  const envelope = EnvelopeSchema.safeParse(parsed);
  if (!envelope.success) {
    return { kind: 'unparseable', problem: `frame is not a message envelope: ${describeIssues(envelope.error)}` };
  }
  const { type, data } = envelope.data;
  switch (type) {
    case 'task_assignment': {
      const result = TaskAssignmentSchema.safeParse(data);
      if (!result.success) {
        const executionId = recoverString(data, 'execution_id');
        return { kind: 'invalid', type, taskId: recoverString(data, 'task_id'), executionId, problem: describeIssues(result.error) };
      }
      const servers = result.data.task.agent_config_snapshot?.mcp_servers;
      let mcpArgument: string | undefined;
      try {
        mcpArgument = servers && Object.keys(servers).length > 0 ? mcpServersArgument(text, servers) : undefined;
      } catch (error) {
        // e.g. a value nested too deeply to re-encode: refuse the task rather than crash the worker.
        const problem = `task.agent_config_snapshot.mcp_servers: cannot be encoded for the agent (${errorMessage(error)})`;
        return { kind: 'invalid', type, taskId: result.data.task_id, executionId: result.data.execution_id, problem };
      }
      return { kind: 'assignment', assignment: result.data, mcpArgument };
    }
    case 'task_cancellation': {
      const result = TaskCancellationSchema.safeParse(data);
      if (!result.success) {
        return { kind: 'invalid', type, taskId: recoverString(data, 'task_id'), problem: describeIssues(result.error) };
      }
      return { kind: 'cancellation', taskId: result.data.task_id };
    }
    default:
      return { kind: 'unknown', type };
  }
}
