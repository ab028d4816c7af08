// `oz-worker plan <assignment.json | ->`: what the worker would launch for an
// assignment with the current configuration, without running anything. It
// goes through the worker's own decoding, scope decision and argument
// builders, so what it prints is what would happen.
import { resolve as resolvePath } from 'node:path';
import { stringify } from 'yaml';
import { buildTaskParams, workerOwnTaskEnv } from '../agent/task-params.js';
import type { TaskParams } from '../task/contract.js';
import { DEFAULT_WORKSPACE_ROOT, type WorkerConfig } from '../config/worker-config.js';
import { decodeFrame } from '../protocol/decode.js';
import { decideAssignment, describeOwner, describeScope } from '../scope/decide.js';
import { invalidAssignmentMessage } from '../worker/worker.js';

export const REDACTED = '[redacted]';

export type Plan =
  | { kind: 'run'; taskId: string; owner: string; backend: string; teamSharing: boolean; launch: Record<string, unknown>; text: string }
  | { kind: 'refuse'; taskId?: string | undefined; answer: object; text: string };

/** Accepts the assignment (`data`) or a whole `task_assignment` frame; keeps the raw text for `--mcp`. */
export function frameText(input: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(input);
  } catch {
    return input; // decodeFrame reports it
  }
  const isFrame = typeof parsed === 'object' && parsed !== null && Object.keys(parsed).some((k) => k.toLowerCase() === 'type');
  return isFrame ? input : `{"type":"task_assignment","data":${input}}`;
}

/**
 * What `plan` may show: the entries the worker sets itself (TASK_ID,
 * GIT_TERMINAL_PROMPT=0, …). Values from the server's env_vars and the
 * operator's -e may be secrets, and are shown only with --show-secrets.
 */
type Visibility = (name: string, value: string) => boolean;

function envView(entries: readonly [string, string][], visible: Visibility): string[] {
  return entries.map(([name, value]) => `${name}=${visible(name, value) ? value : REDACTED}`);
}

function argsView(args: readonly string[], showSecrets: boolean): string[] {
  return args.map((arg, i) => (!showSecrets && i > 0 && args[i - 1] === '--mcp' ? REDACTED : arg));
}

const pairs = (entries: readonly string[]): [string, string][] =>
  entries.filter((e) => e.indexOf('=') > 0).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string]);

async function launchFor(params: TaskParams, config: WorkerConfig, showSecrets: boolean, visible: Visibility): Promise<Record<string, unknown>> {
  const env = [...pairs(params.env), ...Object.entries(config.operatorEnv)];
  switch (config.backend) {
    case 'direct': {
      const target = config.direct.targetDir;
      const workspace = target ? resolvePath(target) : resolvePath(config.direct.workspaceRoot || DEFAULT_WORKSPACE_ROOT, params.taskId);
      return {
        program: config.direct.ozPath || 'oz (from PATH)',
        args: argsView(params.args, showSecrets),
        workspace,
        environment: [...envView(env, visible), `GIT_CONFIG_GLOBAL=${target ? '(temporary directory)' : `${workspace}/.gitconfig`}`],
        inherited: ['HOME', 'TMPDIR', 'PATH'],
        ...(config.direct.setupCommand ? { setupCommand: config.direct.setupCommand } : {}),
        ...(config.direct.teardownCommand ? { teardownCommand: config.direct.teardownCommand } : {}),
      };
    }
    case 'docker':
      return {
        image: params.image,
        command: ['/agent/entrypoint.sh', ...argsView(params.args, showSecrets)],
        sidecars: params.sidecars,
        volumes: config.docker.volumes,
        pullPolicy: config.docker.pullPolicy,
        environment: envView(env, visible),
        ...(params.instanceShape ? { instanceShape: params.instanceShape } : {}),
      };
    case 'command': {
      const { dispatchPayload } = await import('../backends/command/payload.js');
      const payload = JSON.parse(dispatchPayload(params, { serverRootUrl: config.serverRootUrl, workerId: config.workerId })) as Record<string, unknown>;
      if (!showSecrets) redactPayload(payload, visible);
      return { dispatchCommand: config.command.dispatchCommand, stdin: payload };
    }
    case 'kubernetes': {
      const [{ buildTaskJob }, { jobSettingsFrom }, { readPodTemplate }] = await Promise.all([
        import('../backends/kubernetes/job-builder.js'),
        import('../backends/kubernetes/kubernetes-backend.js'),
        import('../backends/kubernetes/pod-template.js'),
      ]);
      const job = buildTaskJob(params, jobSettingsFrom(config, readPodTemplate(config.kubernetes.podTemplate)));
      if (!showSecrets) {
        const spec = job.spec!.template.spec!;
        for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
          for (const entry of container.env ?? []) if (entry.value !== undefined && !visible(entry.name, entry.value)) entry.value = REDACTED;
          if (container.args) container.args = argsView(container.args, false);
        }
      }
      return { job };
    }
  }
}

/** Env values other than the worker's own, and the MCP config, in a dispatch payload are secrets. */
function redactPayload(payload: Record<string, unknown>, visible: Visibility): void {
  for (const [key, value] of Object.entries(payload)) {
    if (/env/i.test(key) && value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [name, entry] of Object.entries(value)) if (typeof entry !== 'string' || !visible(name, entry)) (value as Record<string, unknown>)[name] = REDACTED;
    } else if (Array.isArray(value) && /args/i.test(key)) {
      payload[key] = argsView(value as string[], false);
    } else if (value && typeof value === 'object') {
      redactPayload(value as Record<string, unknown>, visible);
    }
  }
}

export async function planAssignment(input: string, config: WorkerConfig, showSecrets: boolean): Promise<Plan> {
  const frame = decodeFrame(frameText(input));
  if (frame.kind === 'unparseable') return { kind: 'refuse', answer: { dropped: frame.problem }, text: `The worker would drop this frame: ${frame.problem}` };
  if (frame.kind === 'unknown' || frame.kind === 'cancellation') {
    return { kind: 'refuse', answer: { dropped: `not a task assignment (${frame.kind})` }, text: 'This is not a task assignment; the worker would not start anything for it.' };
  }
  if (frame.kind === 'invalid') {
    if (frame.taskId === undefined) {
      return { kind: 'refuse', answer: { dropped: frame.problem }, text: `The worker would drop this assignment (no usable task_id): ${frame.problem}` };
    }
    const answer = { type: 'task_failed', data: { task_id: frame.taskId, message: invalidAssignmentMessage(frame.problem), failure_reason: 'unknown' } };
    return { kind: 'refuse', taskId: frame.taskId, answer, text: `The worker would answer task_failed:\n  ${answer.data.message}` };
  }
  const { assignment, mcpArgument } = frame;
  const owner = describeOwner(assignment.task.owner);
  if (config.device) {
    const decision = decideAssignment(assignment.task.owner, config.device);
    if (!decision.accept) {
      const answer = { type: 'task_rejected', data: { task_id: assignment.task_id, reason: `${decision.code}: ${decision.reason}` } };
      return {
        kind: 'refuse',
        taskId: assignment.task_id,
        answer,
        text: `The worker (device mode, scope ${describeScope(config.device)}) would answer task_rejected:\n  ${answer.data.reason}`,
      };
    }
  }
  const params = buildTaskParams(assignment, mcpArgument, config);
  const own = workerOwnTaskEnv(assignment, config);
  const visible: Visibility = (name, value) => showSecrets || own.has(`${name}=${value}`);
  const launch = await launchFor(params, config, showSecrets, visible);
  const teamSharing = params.args.includes('team:edit');
  const lines = [
    `Task ${params.taskId} (execution ${params.executionId || '(none)'}), owner ${owner}${teamSharing ? ' — team-owned: the agent gets --share team:edit' : ' — no team session sharing'}`,
    `Backend: ${config.backend}`,
  ];
  if ('job' in launch) lines.push('Kubernetes Job:', stringify(launch.job).trimEnd());
  else lines.push(stringify(launch).trimEnd());
  if (!showSecrets) lines.push(`(values from the server and -e shown as ${REDACTED}; pass --show-secrets to see them)`);
  return { kind: 'run', taskId: params.taskId, owner, backend: config.backend, teamSharing, launch, text: lines.join('\n') };
}
