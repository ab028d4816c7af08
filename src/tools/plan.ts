// `oz-worker plan <assignment.json | ->`: what the worker would launch for an
// assignment with the current configuration, without running anything. It
// goes through the worker's own decoding, scope decision and argument
// builders, and through the launch builders each backend's run calls (and
// their refusals), so what it prints is what would happen.
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { buildTaskParams, workerOwnTaskEnv } from '../agent/task-params.js';
import type { TaskParams } from '../task/contract.js';
import { DEFAULT_WORKSPACE_ROOT, describeWorkerSettings, type WorkerConfig } from '../config/worker-config.js';
import { decodeFrame } from '../protocol/decode.js';
import { decideAssignment, describeOwner, describeScope } from '../scope/decide.js';
import { classifyFailure, TaskFailure } from '../task/failure.js';
import { invalidAssignmentMessage } from '../worker/worker.js';
import { errorMessage } from '../errors/error-message.js';

export const REDACTED = '[redacted]';
/** What a hook or dispatch command gets besides the variables shown. */
const HOOKS_INHERIT = "the rest of the worker's environment, without its API key";

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

/** Whether an environment entry may be shown without --show-secrets. */
type Visibility = (name: string, value: string) => boolean;

function envView(entries: Iterable<readonly [string, string]>, visible: Visibility): string[] {
  return [...entries].map(([name, value]) => `${name}=${visible(name, value) ? value : REDACTED}`);
}

function argsView(args: readonly string[], showSecrets: boolean): string[] {
  return args.map((arg, i) => (!showSecrets && i > 0 && args[i - 1] === '--mcp' ? REDACTED : arg));
}

const pairs = (entries: readonly string[]): [string, string][] =>
  entries.filter((e) => e.indexOf('=') > 0).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)] as [string, string]);

export interface PlanContext {
  /** The worker's environment (default `process.env`), as the backend would get it. */
  hostEnv?: NodeJS.ProcessEnv;
}

/**
 * What the selected backend would launch, from the very builders its run
 * calls. A refusal of the backend's (a TaskFailure) is thrown as the run
 * would throw it.
 */
async function launchFor(
  params: TaskParams,
  config: WorkerConfig,
  showSecrets: boolean,
  visible: Visibility,
  context: PlanContext,
): Promise<Record<string, unknown>> {
  switch (config.backend) {
    case 'direct': {
      const [{ findOnPath, resolveOzPath }, launch] = await Promise.all([
        import('../backends/direct/direct-backend.js'),
        import('../backends/direct/launch.js'),
      ]);
      const mode = launch.resolvedWorkspaceMode(config.direct, DEFAULT_WORKSPACE_ROOT);
      const workspace = launch.taskWorkspace(mode, params.taskId);
      const hostEnv = launch.directHostEnv(context.hostEnv ?? process.env, config.direct.runAs);
      // Target-dir mode: a fresh temporary directory per task holds the git config.
      const gitConfigPath = workspace.gitConfigPath ?? join(hostEnv.TMPDIR || '/tmp', `${launch.GITCONFIG_TEMP_PREFIX}(random)`, '.gitconfig');
      const program = await resolveOzPath(config.direct.ozPath, (name) => findOnPath(name, hostEnv.PATH), pino({ level: 'silent' })).catch(
        (error: unknown) => `(none: ${errorMessage(error)}; the worker would not start)`,
      );
      const taskEnv = launch.directTaskEnv({ params, operatorEnv: config.operatorEnv, workspace, gitConfigPath });
      const agent = launch.agentLaunch({ ozPath: program, params, workspace, hostEnv, taskEnv, envFileVars: new Map(), gitConfigPath });
      // The hooks also inherit the worker's environment; shown is what the worker sets over it.
      const hook = { hostEnv: {}, apiKey: config.apiKey, workspaceDir: workspace.dir, taskId: params.taskId };
      const envFilePath = join(workspace.dir, `${launch.ENV_FILE_PREFIX}(random)`);
      return {
        program: agent.file,
        args: argsView(agent.args, showSecrets),
        workspace: agent.cwd,
        environment: envView(agent.env, visible),
        ...(config.direct.setupCommand
          ? {
              setupCommand: config.direct.setupCommand,
              setupEnvironment: envView(launch.setupEnv({ ...hook, taskEnv, envFilePath }), visible),
              setupNote: 'the agent also gets the variables setup writes to $OZ_ENVIRONMENT_FILE',
            }
          : {}),
        ...(config.direct.teardownCommand
          ? { teardownCommand: config.direct.teardownCommand, teardownEnvironment: envView(launch.teardownEnv({ ...hook, gitConfigPath }), visible) }
          : {}),
        ...(config.direct.setupCommand || config.direct.teardownCommand ? { hooksInherit: HOOKS_INHERIT } : {}),
      };
    }
    case 'docker': {
      const { checkTaskImages, sidecarBind, taskContainerSpec } = await import('../backends/docker/container-spec.js');
      checkTaskImages(params);
      // The run binds a volume holding each sidecar image's files; its name is known only then.
      const sidecarBinds = params.sidecars.map((sidecar) => sidecarBind(`(volume of ${sidecar.image})`, sidecar));
      const { body } = taskContainerSpec({
        params,
        workerId: config.workerId,
        operatorEnv: config.operatorEnv,
        sidecarBinds,
        volumes: config.docker.volumes,
        hostCpus: undefined,
      });
      body.Cmd = argsView(body.Cmd as string[], showSecrets);
      body.Env = envView(pairs(body.Env as string[]), visible);
      return {
        pullPolicy: config.docker.pullPolicy,
        container: body,
        ...(params.instanceShape?.vcpus ? { shapeNote: "vcpus above the Docker host's CPU count are lowered to it" } : {}),
      };
    }
    case 'command': {
      const [{ dispatchPayload }, { cancelVariables, commandEnv, dispatchVariables }] = await Promise.all([
        import('../backends/command/payload.js'),
        import('../backends/command/command-backend.js'),
      ]);
      const payload = JSON.parse(dispatchPayload(params, { serverRootUrl: config.serverRootUrl, workerId: config.workerId })) as Record<string, unknown>;
      if (!showSecrets) redactPayload(payload, visible);
      const environment = commandEnv({}, config.apiKey, config.operatorEnv, dispatchVariables(params, config.serverRootUrl));
      const { cancelCommand } = config.command;
      return {
        dispatchCommand: config.command.dispatchCommand,
        environment: envView(environment, visible),
        inherited: HOOKS_INHERIT,
        stdin: payload,
        ...(cancelCommand
          ? {
              cancelCommand,
              cancelEnvironment: envView(commandEnv({}, config.apiKey, config.operatorEnv, cancelVariables(params)), visible),
            }
          : {}),
      };
    }
    case 'kubernetes': {
      const [{ taskJobFor }, { jobSettingsFrom }, { readPodTemplate }] = await Promise.all([
        import('../backends/kubernetes/job-builder.js'),
        import('../backends/kubernetes/kubernetes-backend.js'),
        import('../backends/kubernetes/pod-template.js'),
      ]);
      const job = taskJobFor(params, jobSettingsFrom(config, readPodTemplate(config.kubernetes.podTemplate)));
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

/** Env values from the server and -e, and the MCP config, in a dispatch payload are secrets. */
function redactPayload(payload: Record<string, unknown>, visible: Visibility): void {
  for (const [key, value] of Object.entries(payload)) {
    if (/env/i.test(key) && value && typeof value === 'object' && !Array.isArray(value)) {
      for (const [name, entry] of Object.entries(value))
        if (typeof entry !== 'string' || !visible(name, entry)) (value as Record<string, unknown>)[name] = REDACTED;
    } else if (Array.isArray(value) && /args/i.test(key)) {
      payload[key] = argsView(value as string[], false);
    } else if (value && typeof value === 'object') {
      redactPayload(value as Record<string, unknown>, visible);
    }
  }
}

export async function planAssignment(input: string, config: WorkerConfig, showSecrets: boolean, context: PlanContext = {}): Promise<Plan> {
  const frame = decodeFrame(frameText(input));
  if (frame.kind === 'unparseable') return { kind: 'refuse', answer: { dropped: frame.problem }, text: `The worker would drop this frame: ${frame.problem}` };
  if (frame.kind === 'unknown' || frame.kind === 'cancellation') {
    return {
      kind: 'refuse',
      answer: { dropped: `not a task assignment (${frame.kind})` },
      text: 'This is not a task assignment; the worker would not start anything for it.',
    };
  }
  if (frame.kind === 'invalid') {
    if (frame.taskId === undefined) {
      return { kind: 'refuse', answer: { dropped: frame.problem }, text: `The worker would drop this assignment (no usable task_id): ${frame.problem}` };
    }
    const ids = { task_id: frame.taskId, ...(frame.executionId ? { execution_id: frame.executionId } : {}) };
    const answer = { type: 'task_failed', data: { ...ids, message: invalidAssignmentMessage(frame.problem), failure_reason: 'unknown' } };
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
  // Values from the server's env_vars and the operator's -e may be secrets; what the worker sets itself is shown.
  const own = workerOwnTaskEnv(assignment, config);
  const secret = new Set([...params.env.filter((entry) => !own.has(entry)), ...Object.entries(config.operatorEnv).map(([name, value]) => `${name}=${value}`)]);
  const visible: Visibility = (name, value) => showSecrets || !secret.has(`${name}=${value}`);
  let launch: Record<string, unknown>;
  try {
    launch = await launchFor(params, config, showSecrets, visible, context);
  } catch (error) {
    if (!(error instanceof TaskFailure)) throw error;
    // The backend refuses the task before launching anything: the worker reports what the run would.
    const failure = classifyFailure(error, undefined);
    const ids = { task_id: params.taskId, ...(params.executionId ? { execution_id: params.executionId } : {}) };
    const answer = { type: 'task_failed', data: { ...ids, message: failure.message, failure_reason: failure.reason } };
    return {
      kind: 'refuse',
      taskId: params.taskId,
      answer,
      text: `The ${config.backend} backend would refuse this task; the worker would answer task_failed:\n  ${failure.message}`,
    };
  }
  const teamSharing = params.args.includes('team:edit');
  const lines = [
    `Task ${params.taskId} (execution ${params.executionId || '(none)'}), owner ${owner}${teamSharing ? ' — team-owned: the agent gets --share team:edit' : ' — no team session sharing'}`,
    `Backend: ${config.backend}`,
    `Worker: ${describeWorkerSettings(config)}`,
  ];
  if ('job' in launch) lines.push('Kubernetes Job:', stringify(launch.job).trimEnd());
  else lines.push(stringify(launch).trimEnd());
  if (!showSecrets) lines.push(`(values from the server and -e shown as ${REDACTED}; pass --show-secrets to see them)`);
  return { kind: 'run', taskId: params.taskId, owner, backend: config.backend, teamSharing, launch, text: lines.join('\n') };
}
