// The agent's argument vector, token for token as the Go worker builds it.
import { goJson, goJsonString, repositoryHeadOverrideJson } from '../protocol/raw-json.js';
import type { AgentConfigSnapshot, RepositoryHeadOverride, Task } from '../protocol/messages.js';
import { goTrim } from './go-trim.js';
import { isTeamOwned } from './ownership.js';

export interface AgentArgsInput {
  task: Task;
  /** `task.id`, or the envelope task_id when the task object has none. */
  taskObjectId: string;
  additionalOzArgs?: readonly string[] | undefined;
  /** TaskParams.mcpServers: the `--mcp` token (see `mcpServersJson`), undefined for no servers. */
  mcpServers: string | undefined;
  serverRootUrl: string;
  idleOnComplete: string;
  sessionSharingServerUrl: string;
}

/** Oz is the harness when none is named, or when it is named exactly "" or "oz" (untrimmed, as in Go). */
export function isOzHarness(snapshot: AgentConfigSnapshot): boolean {
  const type = snapshot.harness?.type;
  return type === undefined || type === '' || type === 'oz';
}

/** The `--mcp` token rebuilt from parsed values (names sorted byte-wise). */
export function mcpArgumentFromParsed(servers: Record<string, unknown>): string {
  const names = Object.keys(servers).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `{${names.map((name) => `${goJsonString(name)}:${goJson(servers[name])}`).join(',')}}`;
}

/** One `--repository-head-override-json` per override, then one `--remove-repository-origins`; nothing without overrides. */
export function repositoryHeadOverrideArgs(overrides: readonly RepositoryHeadOverride[] | undefined): string[] {
  if (!overrides || overrides.length === 0) return [];
  return [...overrides.flatMap((override) => ['--repository-head-override-json', repositoryHeadOverrideJson(override)]), '--remove-repository-origins'];
}

const PUBLIC_SHARE: Record<string, string> = { VIEWER: 'public:view', EDITOR: 'public:edit' };

function snapshotArgs(snapshot: AgentConfigSnapshot, mcpServers: string | undefined): string[] {
  const args: string[] = [];
  const oz = isOzHarness(snapshot);
  const nonEmpty = (value: string | undefined) => (value === undefined ? '' : goTrim(value));

  const model = nonEmpty(snapshot.model_id);
  if (oz && model) args.push('--model', model);
  const profile = nonEmpty(snapshot.profile_id);
  if (profile) args.push('--profile', profile);
  const skill = nonEmpty(snapshot.skill_spec);
  if (skill) args.push('--skill', skill);
  if (mcpServers !== undefined) args.push('--mcp', mcpServers);
  const computerUse = snapshot.computer_use_enabled ?? oz;
  args.push(computerUse ? '--computer-use' : '--no-computer-use');
  // Only when it can matter: agent CLIs older than the flag refuse it, so a run without a pinned model keeps the old argv.
  const computerUseModel = nonEmpty(snapshot.computer_use_model_id);
  if (computerUse && oz && computerUseModel) args.push('--computer-use-model', computerUseModel);
  const aws = snapshot.inference_providers?.aws;
  const role = nonEmpty(aws?.role_arn);
  if (aws && aws.disabled !== true && role) {
    args.push('--bedrock-inference-role', role);
    const region = nonEmpty(aws.region);
    if (region) args.push('--bedrock-role-region', region);
  }
  const harness = nonEmpty(snapshot.harness?.type);
  if (harness) args.push('--harness', harness);
  const share = PUBLIC_SHARE[snapshot.session_sharing?.public_access ?? ''];
  if (share) args.push('--share', share);
  if (snapshot.snapshot_disabled === true) args.push('--no-snapshot');
  if ((snapshot.snapshot_upload_timeout_secs ?? 0) > 0) args.push('--snapshot-upload-timeout', `${snapshot.snapshot_upload_timeout_secs}s`);
  if ((snapshot.snapshot_script_timeout_secs ?? 0) > 0) args.push('--snapshot-script-timeout', `${snapshot.snapshot_script_timeout_secs}s`);
  const environment = nonEmpty(snapshot.environment_id);
  if (environment) args.push('--environment', environment);
  args.push(...repositoryHeadOverrideArgs(snapshot.repository_head_overrides));
  return args;
}

export function buildAgentArgs(input: AgentArgsInput): string[] {
  const { task } = input;
  const args = ['agent', 'run'];
  if (isTeamOwned(task.owner)) args.push('--share', 'team:edit');
  args.push('--task-id', input.taskObjectId, '--sandboxed', '--server-root-url', input.serverRootUrl);
  const snapshot = task.agent_config_snapshot;
  if (snapshot) args.push(...snapshotArgs(snapshot, input.mcpServers));
  args.push(...(input.additionalOzArgs ?? []));
  const idleMinutes = snapshot?.idle_timeout_minutes ?? 0;
  if (idleMinutes > 0) args.push('--idle-on-complete', `${idleMinutes}m`);
  else if (input.idleOnComplete !== '') args.push('--idle-on-complete', input.idleOnComplete);
  else args.push('--idle-on-complete');
  if (input.sessionSharingServerUrl !== '') args.push('--session-sharing-server-url', input.sessionSharingServerUrl);
  return args;
}
