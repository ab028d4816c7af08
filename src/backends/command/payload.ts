// The dispatch payload (version 1) a dispatch command reads on stdin, byte for
// byte as the Go worker's json.Marshal writes it: key order, sorted env keys,
// HTML-safe escapes, `null` for no sidecars, Go's time format. Pure.
import { envToMap } from '../../agent/task-env.js';
import type { AgentConfigSnapshot, Task } from '../../protocol/messages.js';
import { goJsonString, repositoryHeadOverrideJson } from '../../protocol/raw-json.js';
import type { TaskParams } from '../../task/contract.js';

export const DISPATCH_PAYLOAD_VERSION = 1;

export interface PayloadContext {
  serverRootUrl: string;
  workerId: string;
}

const str = goJsonString;

function object(entries: Array<[string, string | undefined]>): string {
  return `{${entries
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${str(key)}:${value}`)
    .join(',')}}`;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * A timestamp as Go re-marshals a parsed time.Time: nanosecond precision,
 * trailing zeros of the fraction dropped, `Z` for a zero offset. Absent means
 * Go's zero time.
 */
export function goTime(text: string | undefined): string {
  if (text === undefined) return '0001-01-01T00:00:00Z';
  const match = RFC3339.exec(text);
  if (!match) return text;
  const [, date, time, fraction = '', zone = 'Z'] = match;
  const nanos = fraction.slice(0, 9).replace(/0+$/, '');
  const offset = zone === 'Z' || zone === 'z' || /^[+-]00:00$/.test(zone) ? 'Z' : zone;
  return `${date}T${time}${nanos ? `.${nanos}` : ''}${offset}`;
}

/**
 * The snapshot with only known, present keys, in the Go struct's order.
 * `mcpServers` is TaskParams.mcpServers: the byte-exact servers JSON, absent
 * for an absent or empty map (omitempty).
 */
export function snapshotJson(snapshot: AgentConfigSnapshot, mcpServers: string | undefined): string {
  const s = snapshot;
  const optional = (value: string | undefined) => (value === undefined ? undefined : str(value));
  const scalar = (value: number | boolean | undefined) => (value === undefined ? undefined : JSON.stringify(value));
  const aws = s.inference_providers?.aws;
  return object([
    ['environment_id', optional(s.environment_id)],
    ['base_prompt', optional(s.base_prompt)],
    ['model_id', optional(s.model_id)],
    ['profile_id', optional(s.profile_id)],
    ['skill_spec', optional(s.skill_spec)],
    ['mcp_servers', mcpServers],
    ['computer_use_enabled', scalar(s.computer_use_enabled)],
    ['computer_use_model_id', optional(s.computer_use_model_id)],
    ['idle_timeout_minutes', scalar(s.idle_timeout_minutes)],
    ['harness', s.harness ? object([['type', optional(s.harness.type)]]) : undefined],
    [
      'harness_auth_secrets',
      s.harness_auth_secrets ? object([['claude_auth_secret_name', optional(s.harness_auth_secrets.claude_auth_secret_name)]]) : undefined,
    ],
    [
      'inference_providers',
      s.inference_providers
        ? object([
            [
              'aws',
              aws
                ? object([
                    ['disabled', aws.disabled === true ? 'true' : undefined],
                    ['role_arn', aws.role_arn ? str(aws.role_arn) : undefined],
                    ['region', aws.region ? str(aws.region) : undefined],
                  ])
                : undefined,
            ],
          ])
        : undefined,
    ],
    ['session_sharing', s.session_sharing ? object([['public_access', optional(s.session_sharing.public_access)]]) : undefined],
    ['snapshot_disabled', scalar(s.snapshot_disabled)],
    ['snapshot_upload_timeout_secs', scalar(s.snapshot_upload_timeout_secs)],
    ['snapshot_script_timeout_secs', scalar(s.snapshot_script_timeout_secs)],
    [
      'repository_head_overrides',
      s.repository_head_overrides?.length ? `[${s.repository_head_overrides.map(repositoryHeadOverrideJson).join(',')}]` : undefined,
    ],
  ]);
}

/** The task as the Go worker re-serialises it. */
export function taskJson(task: Task, mcpServers: string | undefined): string {
  return object([
    ['id', str(task.id ?? '')],
    ['title', str(task.title ?? '')],
    ['task_definition', object([['prompt', str(task.task_definition?.prompt ?? '')]])],
    ['created_at', str(goTime(task.created_at))],
    ['updated_at', str(goTime(task.updated_at))],
    [
      'owner',
      task.owner
        ? object([
            ['Type', str(task.owner.Type ?? '')],
            ['Id', String(task.owner.Id ?? 0)],
          ])
        : undefined,
    ],
    ['agent_config_snapshot', task.agent_config_snapshot ? snapshotJson(task.agent_config_snapshot, mcpServers) : undefined],
    ['agent_conversation_id', task.agent_conversation_id === undefined ? undefined : str(task.agent_conversation_id)],
  ]);
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The compact payload bytes (no trailing newline). Secrets are in `env` and nowhere else. */
export function dispatchPayload(params: TaskParams, context: PayloadContext): string {
  const env = envToMap(params.env);
  const envJson = `{${Object.keys(env)
    .sort(byteOrder)
    .map((key) => `${str(key)}:${str(env[key]!)}`)
    .join(',')}}`;
  const sidecars =
    params.sidecars.length === 0
      ? 'null'
      : `[${params.sidecars.map((s) => `{"image":${str(s.image)},"mount_path":${str(s.mount_path)},"read_write":${s.read_write}}`).join(',')}]`;
  return object([
    ['version', String(DISPATCH_PAYLOAD_VERSION)],
    ['run_id', str(params.taskId)],
    ['execution_id', str(params.executionId)],
    ['server_root_url', str(context.serverRootUrl)],
    ['worker_id', str(context.workerId)],
    ['docker_image', str(params.image)],
    ['base_args', `[${params.args.map(str).join(',')}]`],
    ['env', envJson],
    ['sidecars', sidecars],
    ['task', taskJson(params.task, params.mcpServers)],
  ]);
}
