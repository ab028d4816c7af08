// Wire messages between the dispatch server and the worker, as zod schemas.
// Field names are exactly those on the wire. Decoding follows the Go worker's
// encoding/json rules where a server may rely on them: object keys match
// case-insensitively (the last duplicate wins), unknown keys are ignored and a
// JSON null leaves a field absent. Type mismatches are errors.
import { z } from 'zod';

/** Lower-cases keys onto the schema's canonical names and drops nulls, as Go's decoder does. */
function goKeys(value: unknown, canonical: readonly string[]): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  const byLower = new Map(canonical.map((name) => [name.toLowerCase(), name]));
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    const name = byLower.get(key.toLowerCase());
    if (name === undefined) continue;
    if (field === null) delete out[name];
    else out[name] = field;
  }
  return out;
}

/** An object decoded with Go's struct rules. */
function goStruct<Shape extends z.ZodRawShape>(shape: Shape) {
  const names = Object.keys(shape);
  return z.preprocess((v) => goKeys(v, names), z.object(shape));
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const timestamp = z.string().regex(RFC3339, 'must be an RFC 3339 timestamp');
const int = z.int();

export const OwnerSchema = goStruct({
  Type: z.string().optional(),
  Id: int.optional(),
});
export type Owner = z.infer<typeof OwnerSchema>;

export const HarnessSchema = goStruct({ type: z.string().optional() });

/**
 * A repository checkout the server computed for the run (benchmark trials): the
 * worker forwards it to the agent unchanged, as `--repository-head-override-json`.
 * `head.type` is `COMMIT_SHA` or `BRANCH` on the wire; like Go, any string is taken.
 */
export const RepositoryHeadOverrideSchema = goStruct({
  code_forge: z.string().optional(),
  repo_owner: z.string().optional(),
  repo_name: z.string().optional(),
  head: goStruct({ type: z.string().optional(), value: z.string().optional() }).optional(),
  clone_from: goStruct({ code_forge: z.string().optional(), owner: z.string().optional(), repo: z.string().optional() }).optional(),
  preserve_origin: z.boolean().optional(),
});
export type RepositoryHeadOverride = z.infer<typeof RepositoryHeadOverrideSchema>;

export const AgentConfigSnapshotSchema = goStruct({
  environment_id: z.string().optional(),
  base_prompt: z.string().optional(),
  model_id: z.string().optional(),
  profile_id: z.string().optional(),
  skill_spec: z.string().optional(),
  mcp_servers: z.record(z.string(), z.unknown()).optional(),
  computer_use_enabled: z.boolean().optional(),
  computer_use_model_id: z.string().optional(),
  idle_timeout_minutes: int.optional(),
  harness: HarnessSchema.optional(),
  harness_auth_secrets: goStruct({ claude_auth_secret_name: z.string().optional() }).optional(),
  inference_providers: goStruct({
    aws: goStruct({
      disabled: z.boolean().optional(),
      role_arn: z.string().optional(),
      region: z.string().optional(),
    }).optional(),
  }).optional(),
  session_sharing: goStruct({ public_access: z.string().optional() }).optional(),
  snapshot_disabled: z.boolean().optional(),
  snapshot_upload_timeout_secs: int.optional(),
  snapshot_script_timeout_secs: int.optional(),
  // A null element decodes to an all-empty override, as in Go (a slice element is a struct, not a pointer).
  repository_head_overrides: z.array(z.preprocess((v) => (v === null ? {} : v), RepositoryHeadOverrideSchema)).optional(),
});
export type AgentConfigSnapshot = z.infer<typeof AgentConfigSnapshotSchema>;

export const TaskSchema = goStruct({
  id: z.string().optional(),
  title: z.string().optional(),
  task_definition: goStruct({ prompt: z.string().optional() }).optional(),
  created_at: timestamp.optional(),
  updated_at: timestamp.optional(),
  owner: OwnerSchema.optional(),
  agent_config_snapshot: AgentConfigSnapshotSchema.optional(),
  agent_conversation_id: z.string().optional(),
});
export type Task = z.infer<typeof TaskSchema>;

export const SidecarMountSchema = goStruct({
  image: z.string().optional(),
  mount_path: z.string().optional(),
  read_write: z.boolean().optional(),
});
export type SidecarMount = { image: string; mount_path: string; read_write: boolean };

export const InstanceShapeSchema = goStruct({
  vcpus: int.optional(),
  memory_gb: int.optional(),
});
export type InstanceShape = z.infer<typeof InstanceShapeSchema>;

/**
 * Where the task's telemetry goes (a later Go worker's `TelemetryCollection`).
 * The worker exports the task's logs when `logging_enabled` (and the operator's
 * `collect_task_logs`) allow it; `tracing_enabled` is read and not used, as in Go.
 */
export const TelemetryCollectionSchema = goStruct({
  endpoint: z.string().optional(),
  tracing_enabled: z.boolean().optional(),
  logging_enabled: z.boolean().optional(),
  bootstrap_token: goStruct({ token: z.string().optional(), expires_at: z.string().optional() }).optional(),
});
export type TelemetryCollection = z.infer<typeof TelemetryCollectionSchema>;

export const TaskAssignmentSchema = goStruct({
  task_id: z.string({ error: 'task_id is missing' }).min(1, 'task_id is empty'),
  execution_id: z.string().optional(),
  task: TaskSchema,
  docker_image: z.string().optional(),
  sidecar_image: z.string().optional(),
  env_vars: z.record(z.string(), z.string()).optional(),
  additional_sidecars: z.array(SidecarMountSchema).optional(),
  additional_oz_args: z.array(z.string()).optional(),
  instance_shape: InstanceShapeSchema.optional(),
  telemetry_collection: TelemetryCollectionSchema.optional(),
});
export type TaskAssignment = z.infer<typeof TaskAssignmentSchema>;

export const TaskCancellationSchema = goStruct({
  task_id: z.string({ error: 'task_id is missing' }).min(1, 'task_id is empty'),
});
export type TaskCancellation = z.infer<typeof TaskCancellationSchema>;

/** The envelope every frame carries; `data` is decoded per type. */
export const EnvelopeSchema = goStruct({
  type: z.string({ error: 'type is missing' }),
  data: z.unknown().optional(),
});

// ---- worker → server -------------------------------------------------------

export const TASK_STATE_CANCELLED = 'CANCELLED';

export const TaskClaimedSchema = z.object({ task_id: z.string(), worker_id: z.string() });
export const TaskRejectedSchema = z.object({ task_id: z.string(), reason: z.string() });
// `execution_id` echoes the assignment's; left out when it had none (Go's omitempty).
export const TaskCompletedSchema = z.object({
  task_id: z.string(),
  execution_id: z.string().optional(),
  message: z.string(),
  task_state: z.literal(TASK_STATE_CANCELLED).optional(),
});
// `failure_details`: what a backend saw of a failure, structured and allow-listed
// (Kubernetes only, as in the Go worker): names, uids, states, reasons, exit
// codes and times; never a free-form message, namespace, node, image or runtime
// id. Field order is the Go worker's; absent fields are left out (omitempty).
const ConditionDetailsSchema = z.object({
  type: z.string().optional(),
  status: z.string().optional(),
  reason: z.string().optional(),
  last_transition_time: timestamp.optional(),
});
export const KubernetesFailureDetailsSchema = z.object({
  schema_version: int,
  /** `pod_watch`, `job_watch` or `safety_poll`: which observation found the failure; absent when none did (the Job was never created). */
  observation_source: z.string().optional(),
  observed_at: timestamp,
  job: z.object({ name: z.string().optional(), uid: z.string().optional(), conditions: z.array(ConditionDetailsSchema).optional() }).optional(),
  pod: z
    .object({
      name: z.string().optional(),
      uid: z.string().optional(),
      phase: z.string().optional(),
      reason: z.string().optional(),
      deletion_timestamp: timestamp.optional(),
      conditions: z.array(ConditionDetailsSchema).optional(),
    })
    .optional(),
  container: z
    .object({
      /** `regular`, `init` or `sidecar` (a native sidecar: an init container with restartPolicy Always). */
      kind: z.string().optional(),
      name: z.string().optional(),
      /** `terminated` or `waiting`. */
      state: z.string().optional(),
      waiting_reason: z.string().optional(),
      termination_reason: z.string().optional(),
      raw_exit_code: int.optional(),
      /** 128 + signal when a signal ended it, else the raw exit code. */
      normalized_exit_code: int.optional(),
      signal: int.optional(),
      started_at: timestamp.optional(),
      finished_at: timestamp.optional(),
    })
    .optional(),
  events: z
    .array(
      z.object({
        type: z.string().optional(),
        reason: z.string().optional(),
        count: int.optional(),
        first_observed_at: timestamp.optional(),
        last_observed_at: timestamp.optional(),
      }),
    )
    .optional(),
  truncated: z.boolean().optional(),
});
export type KubernetesFailureDetails = z.infer<typeof KubernetesFailureDetailsSchema>;
export const FailureDetailsSchema = z.object({ kubernetes: KubernetesFailureDetailsSchema.optional() });
export type FailureDetails = z.infer<typeof FailureDetailsSchema>;
/** The most a server keeps of one failure's details (the Warp server's limit), as JSON bytes. */
export const MAX_FAILURE_DETAILS_BYTES = 32 * 1024;

export const TaskFailedSchema = z.object({
  task_id: z.string(),
  execution_id: z.string().optional(),
  message: z.string(),
  failure_reason: z.string().optional(),
  exit_code: int.optional(),
  failure_details: FailureDetailsSchema.optional(),
});

export const OutboundMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('task_claimed'), data: TaskClaimedSchema }),
  z.object({ type: z.literal('task_rejected'), data: TaskRejectedSchema }),
  z.object({ type: z.literal('task_completed'), data: TaskCompletedSchema }),
  z.object({ type: z.literal('task_failed'), data: TaskFailedSchema }),
]);
export type OutboundMessage = z.infer<typeof OutboundMessageSchema>;

export const InboundMessageTypes = ['task_assignment', 'task_cancellation'] as const;
