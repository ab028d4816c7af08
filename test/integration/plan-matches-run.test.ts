// `oz-worker plan` is the run: each assignment of the table goes to `plan` and
// to the real backend (direct with the recording stand-in agent, Docker through
// the fake Engine, Kubernetes through the fake API server, command through a
// recording dispatch command), and what plan said must be what was launched —
// argv, environment, workspace, container body, Job, payload — or the same
// refusal, with the same message.
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildTaskParams } from '../../src/agent/task-params.js';
import { createCommandBackend } from '../../src/backends/command/command-backend.js';
import { createDirectBackend } from '../../src/backends/direct/direct-backend.js';
import { createDockerBackend } from '../../src/backends/docker/docker-backend.js';
import { createKubernetesBackend } from '../../src/backends/kubernetes/kubernetes-backend.js';
import { loadConfigFile } from '../../src/config/load-file.js';
import { resolveWorkerConfig, type WorkerFlags } from '../../src/config/resolve.js';
import type { WorkerConfig, WorkerConfigFor } from '../../src/config/worker-config.js';
import { decodeFrame } from '../../src/protocol/decode.js';
import type { Backend } from '../../src/task/contract.js';
import { classifyFailure, TaskFailure } from '../../src/task/failure.js';
import { frameText, planAssignment, type Plan } from '../../src/tools/plan.js';
import { FakeDockerEngine } from '../support/fake-docker-engine.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { FAKE_OZ, tempDir } from '../support/worker-process.js';

type BackendKind = 'direct' | 'direct-target-dir' | 'docker' | 'kubernetes' | 'command';
const KINDS: BackendKind[] = ['direct', 'direct-target-dir', 'docker', 'kubernetes', 'command'];

interface Case {
  name: string;
  assignment: Record<string, unknown>;
  /** The operator's `-e` flags. */
  env?: string[];
  /** The backends that refuse this assignment (every other one runs it). */
  refusedBy?: BackendKind[];
  /** Entries the agent argv must hold, in this order and adjacent. */
  args?: string[];
  /** Environment entries the launched task must get (direct, Docker). */
  taskEnv?: string[];
}

const task = (id: string | undefined, extra: Record<string, unknown> = {}) => ({ ...(id === undefined ? {} : { id }), title: 'a task', ...extra });
const assignment = (taskId: string, extra: Record<string, unknown> = {}) => ({
  task_id: taskId,
  execution_id: `exec-${taskId.length}`,
  task: task(taskId),
  ...extra,
});
const snapshot = (agentConfig: Record<string, unknown>, taskId = 'snap') => assignment(taskId, { task: task(taskId, { agent_config_snapshot: agentConfig }) });

const UNSAFE_IDS = ['../escape', 'a/../../escape', '/abs/path', '..', '.', 'back\\slash'];

const CASES: Case[] = [
  {
    name: 'team-owned task with server env vars and MCP servers',
    assignment: assignment('team-1', {
      task: task('team-1', {
        owner: { Type: 'TEAM', Id: 42 },
        agent_config_snapshot: { model_id: 'claude-test', mcp_servers: { github: { token: 'ghp_mcp' } } },
      }),
      env_vars: { GITHUB_ACCESS_TOKEN: 'ghp_secret', EMPTY: '', WITH_EQUALS: 'a=b=c' },
    }),
    args: ['agent', 'run', '--share', 'team:edit'],
    taskEnv: ['GITHUB_ACCESS_TOKEN=ghp_secret', 'WITH_EQUALS=a=b=c'],
  },
  { name: 'user-owned task', assignment: assignment('user-1', { task: task('user-1', { owner: { Type: 'USER', Id: 7 } }) }) },
  { name: 'owner-less task', assignment: assignment('nobody-1') },
  {
    name: 'task.id missing: --task-id falls back to the envelope task_id',
    assignment: { task_id: 'envelope-id', execution_id: 'e1', task: task(undefined) },
    args: ['--task-id', 'envelope-id'],
    taskEnv: ['TASK_ID=envelope-id'],
  },
  {
    name: 'task.id empty: --task-id falls back to the envelope task_id',
    assignment: { task_id: 'envelope-empty', execution_id: 'e3', task: task('') },
    args: ['--task-id', 'envelope-empty'],
    taskEnv: ['TASK_ID=envelope-empty'],
  },
  {
    name: 'task.id differs from the envelope task_id',
    assignment: { task_id: 'envelope-2', execution_id: 'e2', task: task('object-2') },
    args: ['--task-id', 'object-2'],
    taskEnv: ['TASK_ID=object-2'],
  },
  { name: 'no execution id', assignment: { task_id: 'no-exec', task: task('no-exec') } },
  {
    name: 'operator -e and a server env var of the same name',
    assignment: assignment('env-1', { env_vars: { SHARED: 'from-server' } }),
    env: ['SHARED=from-operator', 'OTHER=x'],
  },
  {
    name: 'claude harness with an -e CLAUDE_CONFIG_DIR the direct backend overrides',
    assignment: snapshot({ harness: { type: 'claude' }, model_id: 'claude-4-8-opus-high' }, 'claude-1'),
    env: ['CLAUDE_CONFIG_DIR=/operator/claude'],
    args: ['--harness', 'claude'],
  },
  {
    name: 'codex harness with an -e CODEX_HOME',
    assignment: snapshot({ harness: { type: 'codex' }, computer_use_enabled: false }, 'codex-1'),
    env: ['CODEX_HOME=/operator/codex'],
  },
  { name: 'unknown harness', assignment: snapshot({ harness: { type: 'other' } }, 'other-harness') },
  { name: 'idle timeout from the task', assignment: snapshot({ idle_timeout_minutes: 15 }, 'idle-1') },
  { name: 'zero idle timeout', assignment: snapshot({ idle_timeout_minutes: 0 }, 'idle-0') },
  {
    name: 'bedrock inference role and region',
    assignment: snapshot(
      { model_id: 'claude-sonnet-4', inference_providers: { aws: { role_arn: 'arn:aws:iam::123456789012:role/Bedrock', region: '  us-east-1  ' } } },
      'bedrock',
    ),
  },
  { name: 'public session sharing', assignment: snapshot({ session_sharing: { public_access: 'VIEWER' } }, 'share-view') },
  {
    name: 'snapshot controls',
    assignment: snapshot({ snapshot_disabled: true, snapshot_upload_timeout_secs: 90, snapshot_script_timeout_secs: 45 }, 'snap-ctl'),
  },
  {
    name: 'profile, skill and base prompt',
    assignment: snapshot({ profile_id: 'p1', skill_spec: 'repo:skill', base_prompt: 'be brief', environment_id: 'env-9' }, 'profile-1'),
  },
  { name: 'supplemental oz args', assignment: assignment('extra-args', { additional_oz_args: ['--skip-initial-turn'] }) },
  {
    name: 'a pinned computer-use model under the Oz harness',
    assignment: snapshot({ computer_use_model_id: '  claude-4-5-haiku  ', model_id: 'auto' }, 'cu-model'),
    args: ['--model', 'auto', '--computer-use', '--computer-use-model', 'claude-4-5-haiku', '--idle-on-complete'],
  },
  {
    name: 'a pinned computer-use model under a third-party harness is not passed',
    assignment: snapshot({ computer_use_model_id: 'claude-4-5-haiku', harness: { type: 'codex' } }, 'cu-codex'),
    args: ['--no-computer-use', '--harness', 'codex', '--idle-on-complete'],
  },
  {
    name: 'repository head overrides',
    assignment: assignment('repo-heads', {
      task: task('repo-heads', {
        agent_config_snapshot: {
          environment_id: 'env-2',
          repository_head_overrides: [
            { code_forge: 'GITHUB', repo_owner: 'warpdotdev', repo_name: 'warp-server', head: { type: 'BRANCH', value: 'feature/<x>&y' }, unknown: true },
            {
              code_forge: 'GITHUB',
              repo_owner: 'warpdotdev',
              repo_name: 'warp',
              head: { type: 'COMMIT_SHA', value: '0123456789abcdef0123456789abcdef01234567' },
              clone_from: { code_forge: 'GITHUB', owner: 'warpdotdev', repo: 'warp-for-benchmarks' },
              preserve_origin: true,
            },
          ],
        },
      }),
      additional_oz_args: ['--skip-initial-turn'],
    }),
    args: [
      '--environment',
      'env-2',
      '--repository-head-override-json',
      '{"code_forge":"GITHUB","repo_owner":"warpdotdev","repo_name":"warp-server","head":{"type":"BRANCH","value":"feature/\\u003cx\\u003e\\u0026y"}}',
      '--repository-head-override-json',
      '{"code_forge":"GITHUB","repo_owner":"warpdotdev","repo_name":"warp","head":{"type":"COMMIT_SHA","value":"0123456789abcdef0123456789abcdef01234567"},"clone_from":{"code_forge":"GITHUB","owner":"warpdotdev","repo":"warp-for-benchmarks"},"preserve_origin":true}',
      '--remove-repository-origins',
      '--skip-initial-turn',
      '--idle-on-complete',
    ],
  },

  {
    name: 'sidecars and an instance shape',
    assignment: assignment('sidecars-1', {
      docker_image: 'alpine:3.19',
      sidecar_image: 'warpdotdev/agent-sidecar:1',
      additional_sidecars: [
        { image: 'tools/readonly:2', mount_path: '/opt/tools' },
        { image: 'tools/cache:3', mount_path: '/cache', read_write: true },
      ],
      instance_shape: { vcpus: 1, memory_gb: 2 },
    }),
  },
  {
    name: 'duplicate sidecar mount paths',
    assignment: assignment('dup-mount', {
      additional_sidecars: [
        { image: 'a/b:1', mount_path: '/m' },
        { image: 'c/d:1', mount_path: '/m' },
      ],
    }),
    refusedBy: ['docker', 'kubernetes'],
  },
  {
    name: 'sidecar without an image',
    assignment: assignment('no-image', { additional_sidecars: [{ mount_path: '/m' }] }),
    refusedBy: ['docker', 'kubernetes'],
  },
  {
    name: 'sidecar at the Kubernetes workspace path',
    assignment: assignment('ws-mount', { additional_sidecars: [{ image: 'a/b:1', mount_path: '/workspace' }] }),
    refusedBy: ['kubernetes'],
  },
  { name: 'an image reference Docker refuses', assignment: assignment('bad-image', { docker_image: 'Not A/Valid Image' }), refusedBy: ['docker'] },
  {
    name: 'a sidecar image reference Docker refuses',
    assignment: assignment('bad-sidecar', { additional_sidecars: [{ image: 'tools/has space:1', mount_path: '/m' }] }),
    refusedBy: ['docker'],
  },
  // Task ids that would put a per-task workspace outside workspace_root (the Go worker's own table).
  ...UNSAFE_IDS.map(
    (id): Case => ({
      name: `unsafe task id ${JSON.stringify(id)}`,
      assignment: { task_id: id, execution_id: 'e', task: task('safe-object-id') },
      refusedBy: ['direct', 'direct-target-dir'],
    }),
  ),
];

const log = pino({ level: 'silent' });
let dir: { path: string; cleanup: () => void };
let engine: FakeDockerEngine;
let kube: FakeKubeApi;
let caseNumber = 0;
const backends: Backend[] = [];

beforeAll(async () => {
  const made = tempDir('plan-run');
  dir = { path: realpathSync(made.path), cleanup: made.cleanup };
  engine = await FakeDockerEngine.start();
  kube = await FakeKubeApi.start();
  kube.stepMs = 1;
});

afterEach(async () => {
  for (const backend of backends.splice(0)) await backend.shutdown();
});

afterAll(async () => {
  await engine.close();
  await kube.close();
  dir.cleanup();
});

interface Setup {
  config: WorkerConfig;
  hostEnv: NodeJS.ProcessEnv;
  /** Where the stand-in agent or the dispatch command records what it got. */
  records: string;
  /** Where the direct backend's setup and teardown commands record their environments. */
  hooks: string;
  workDir: string;
}

async function setUp(kind: BackendKind, testCase: Case): Promise<Setup> {
  const base = join(dir.path, String(++caseNumber));
  const records = join(base, 'records');
  const hooks = join(base, 'hooks');
  const workDir = join(base, 'work');
  mkdirSync(records, { recursive: true });
  mkdirSync(hooks, { recursive: true });
  mkdirSync(workDir, { recursive: true });
  const hostEnv: NodeJS.ProcessEnv = { HOME: base, PATH: process.env.PATH, TMPDIR: base, DOCKER_HOST: engine.dockerHost, HOST_ONLY: 'not for the agent' };
  const flags: WorkerFlags = {
    apiKey: 'wk_worker_key',
    workerId: 'plan-run',
    backend: kind.startsWith('direct') ? 'direct' : kind,
    env: [...(testCase.env ?? [])],
  };
  let yaml = '';
  if (kind.startsWith('direct')) {
    flags.ozPath = FAKE_OZ;
    flags.env!.push(`OZ_RECORD_DIR=${records}`);
    if (kind === 'direct-target-dir') flags.targetDir = workDir;
    else flags.workspaceRoot = join(workDir, 'workspaces');
    // The hooks record the environment the worker gives them.
    yaml = `backend:\n  direct:\n    setup_command: 'env -0 > "${hooks}/setup"'\n    teardown_command: 'env -0 > "${hooks}/teardown"'\n`;
  } else if (kind === 'docker') {
    flags.volumes = [`${workDir}:/data:ro`];
  } else if (kind === 'kubernetes') {
    yaml = `backend:\n  kubernetes:\n    kubeconfig: ${kube.writeKubeconfig(base)}\n    namespace: agents\n    preflight_timeout: 0s\n`;
  } else {
    yaml = `backend:\n  command:\n    dispatch_command: 'cat > "${records}/stdin"; env -0 > "${records}/env"'\n`;
  }
  let file;
  if (yaml) {
    writeFileSync(join(base, 'config.yaml'), yaml);
    file = await loadConfigFile(join(base, 'config.yaml'));
  }
  return { config: resolveWorkerConfig(flags, file, hostEnv), hostEnv, records, hooks, workDir };
}

async function createBackend(kind: BackendKind, setup: Setup): Promise<Backend> {
  const { config, hostEnv } = setup;
  if (!config.backend.startsWith(kind.split('-')[0]!)) throw new Error(`setup for ${kind} resolved backend ${config.backend}`);
  let backend: Backend;
  if (config.backend === 'direct') backend = await createDirectBackend(config, { log, hostEnv });
  else if (config.backend === 'docker') backend = await createDockerBackend(config, { log, env: hostEnv, home: hostEnv.HOME });
  else if (config.backend === 'kubernetes') backend = await createKubernetesBackend(config, { log, env: hostEnv });
  else backend = await createCommandBackend(config, { log, hostEnv });
  backends.push(backend);
  return backend;
}

/** Runs the assignment as the worker does: decode, build the params, hand them to the backend. */
async function runOnBackend(backend: Backend, text: string, config: WorkerConfig): Promise<unknown> {
  const frame = decodeFrame(frameText(text));
  if (frame.kind !== 'assignment') throw new Error(`the table's assignment does not decode: ${frame.kind}`);
  const params = buildTaskParams(frame.assignment, frame.mcpArgument, config);
  return backend.executeTask({ params, signal: new AbortController().signal, log }).then(
    () => undefined,
    (error: unknown) => error,
  );
}

const entries = (list: readonly string[]): Record<string, string> =>
  Object.fromEntries(list.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
const launchOf = (plan: Plan): Record<string, any> => (plan.kind === 'run' ? plan.launch : {});
/** A target-dir task's git config lives in a fresh temporary directory, named at random. */
const sameGitTemp = (env: Record<string, string>) => ({ ...env, GIT_CONFIG_GLOBAL: env.GIT_CONFIG_GLOBAL?.replace(/oz-gitconfig-[^/]+/, 'oz-gitconfig-*') });

/** What was launched, in plan's terms; undefined when nothing was. */
function launched(kind: BackendKind, setup: Setup, plan: Plan): Record<string, unknown> | undefined {
  if (kind.startsWith('direct')) {
    const files = readdirSync(setup.records);
    if (files.length === 0) return undefined;
    const record = JSON.parse(readFileSync(join(setup.records, files[0]!), 'utf8')) as { argv: string[]; cwd: string; env: Record<string, string> };
    // The per-process mark that finds a task's processes after a crash is random.
    const { OZWORKER_TASK_MARK: _mark, ...env } = record.env;
    return {
      program: FAKE_OZ,
      args: record.argv,
      workspace: record.cwd,
      env: sameGitTemp(env),
      setupEnv: hookEnv(join(setup.hooks, 'setup')),
      teardownEnv: hookEnv(join(setup.hooks, 'teardown')),
    };
  }
  if (kind === 'docker') {
    const taskId = plan.taskId;
    const all = [...engine.containers.values(), ...engine.removed.values()];
    const container = all.find(
      (c) =>
        c.Labels['dev.warp.oz-worker.role'] === 'task' &&
        c.Labels['dev.warp.oz-worker.run-id'] === taskId &&
        c.Labels['dev.warp.oz-worker.worker-id'] === `plan-run`,
    );
    if (!container) return undefined;
    return normaliseBinds(
      structuredClone(container.body),
      (plan as { launch?: { container?: { HostConfig?: { Binds?: string[] } } } }).launch?.container?.HostConfig?.Binds,
    );
  }
  if (kind === 'kubernetes') {
    const job = kube.created.find(
      (j) =>
        j.metadata?.labels?.['oz-worker-id'] === 'plan-run' &&
        j.spec?.template?.spec?.containers?.some((c: any) => c.env?.some((e: any) => e.name === 'OZ_RUN_ID' && e.value === plan.taskId)),
    );
    return job;
  }
  const stdin = join(setup.records, 'stdin');
  if (!existsSync(stdin)) return undefined;
  const env = Object.fromEntries(
    readFileSync(join(setup.records, 'env'), 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  );
  return { stdin: JSON.parse(readFileSync(stdin, 'utf8')), env };
}

/** What a hook recorded (`env -0`), with the per-task random names in plan's spelling. */
function hookEnv(path: string): Record<string, string> | undefined {
  if (!existsSync(path)) return undefined;
  const env = Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
  );
  return randomNames(sameGitTemp(env));
}

/** The env file and git config temp directory are named at random per task; plan says `(random)`. */
function randomNames(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined) out[key] = value.replace(/oz-env-(?:[0-9a-f]{16}|\(random\))$/, 'oz-env-*');
  }
  return out;
}

/** Sidecar volumes are named by the run (after the image's id): compare the mount part only. */
function normaliseBinds(body: Record<string, any>, planned: string[] | undefined): Record<string, any> {
  const binds: string[] = body.HostConfig?.Binds ?? [];
  const placeholders = (planned ?? []).filter((bind) => bind.startsWith('(volume of '));
  body.HostConfig.Binds = binds.map((bind, i) => (i < placeholders.length ? placeholders[i]! : bind));
  return body;
}

function expectSameLaunch(kind: BackendKind, plan: Plan, actual: Record<string, any>): void {
  const launch = launchOf(plan);
  if (kind.startsWith('direct')) {
    expect(actual.args).toEqual(launch.args);
    expect(actual.workspace).toBe(launch.workspace);
    expect(actual.program).toBe(launch.program);
    expect(actual.env).toEqual(sameGitTemp(entries(launch.environment)));
    // The hooks get the worker's environment too; plan shows what the worker sets over it.
    expect(actual.setupEnv).toMatchObject(randomNames(sameGitTemp(entries(launch.setupEnvironment))));
    expect(actual.teardownEnv).toMatchObject(randomNames(sameGitTemp(entries(launch.teardownEnvironment))));
    for (const hook of [actual.setupEnv, actual.teardownEnv]) {
      expect(hook).toMatchObject({ OZ_RUN_ID: plan.taskId, WARP_RUN_ID: plan.taskId, OZ_WORKER_BACKEND: 'direct', WARP_WORKER_BACKEND: 'direct' });
    }
  } else if (kind === 'docker') {
    expect(actual).toEqual(launch.container);
  } else if (kind === 'kubernetes') {
    expect(actual).toEqual(JSON.parse(JSON.stringify(launch.job)));
  } else {
    expect(actual.stdin).toEqual(launch.stdin);
    expect(actual.env).toMatchObject(entries(launch.environment));
  }
}

/** The agent argv and the task's own environment, wherever the backend keeps them. */
function argsAndEnv(kind: BackendKind, plan: Plan): { args: string[]; env: string[] } {
  const launch = launchOf(plan);
  if (kind.startsWith('direct')) return { args: launch.args, env: launch.environment };
  if (kind === 'docker') return { args: launch.container.Cmd.slice(1), env: launch.container.Env };
  if (kind === 'kubernetes') {
    const container = launch.job.spec.template.spec.containers.find((c: any) => c.name === 'task');
    return { args: container.args, env: container.env.map((e: any) => `${e.name}=${e.value}`) };
  }
  return { args: launch.stdin.base_args, env: Object.entries(launch.stdin.env as Record<string, string>).map(([k, v]) => `${k}=${v}`) };
}

function containsRun(list: readonly string[], run: readonly string[]): boolean {
  return list.some((_, i) => run.every((item, j) => list[i + j] === item));
}

describe.each(KINDS)('plan matches the %s backend', (kind) => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, testCase) => {
    const setup = await setUp(kind, testCase);
    const text = JSON.stringify(testCase.assignment);
    const plan = await planAssignment(text, setup.config, true, { hostEnv: setup.hostEnv });
    const backend = await createBackend(kind, setup);
    const error = await runOnBackend(backend, text, setup.config);
    const actual = launched(kind, setup, plan);

    const refused = testCase.refusedBy?.includes(kind) ?? false;
    expect(plan.kind, plan.text).toBe(refused ? 'refuse' : 'run');
    if (plan.kind === 'refuse') {
      expect(actual, 'the run launched what plan refused').toBeUndefined();
      expect(error).toBeInstanceOf(TaskFailure);
      const failure = classifyFailure(error, undefined);
      expect(plan.answer).toEqual({
        type: 'task_failed',
        data: {
          task_id: testCase.assignment.task_id,
          ...(testCase.assignment.execution_id ? { execution_id: testCase.assignment.execution_id } : {}),
          message: failure.message,
          failure_reason: failure.reason,
        },
      });
      return;
    }
    expect(actual, `nothing was launched (the run said: ${String(error)})`).toBeDefined();
    expectSameLaunch(kind, plan, actual!);
    const { args, env } = argsAndEnv(kind, plan);
    if (testCase.args) expect(containsRun(args, testCase.args), args.join(' ')).toBe(true);
    for (const entry of testCase.taskEnv ?? []) expect(env).toContain(entry);
  });
});

describe('plan shows what the direct backend decides', () => {
  it('gives a claude task its workspace CLAUDE_CONFIG_DIR, not the -e value', async () => {
    const testCase = CASES.find((c) => c.name.startsWith('claude harness'))!;
    const setup = await setUp('direct', testCase);
    const plan = await planAssignment(JSON.stringify(testCase.assignment), setup.config, false, { hostEnv: setup.hostEnv });
    expect(launchOf(plan).environment).toContain(`CLAUDE_CONFIG_DIR=${join(setup.workDir, 'workspaces', 'claude-1', '.claude')}`);
  });

  it("refuses a task id that leaves workspace_root with the run's message", async () => {
    const setup = await setUp('direct', CASES[0]!);
    const plan = await planAssignment(JSON.stringify({ task_id: '../escape', task: { id: 'x' } }), setup.config, false, { hostEnv: setup.hostEnv });
    expect(plan.kind).toBe('refuse');
    expect(plan.text).toContain('Failed to execute task: invalid task ID for workspace path: invalid task ID "../escape": it contains a path separator');
    expect(existsSync(join(setup.workDir, 'escape'))).toBe(false);
  });
});

describe('plan shows what the run does with the later Go settings', () => {
  it("shows the cancel command's environment as a cancel gives it (OZ_ and WARP_ names)", async () => {
    const testCase = CASES.find((c) => c.name === 'user-owned task')!;
    const setup = await setUp('command', testCase);
    const config = setup.config as WorkerConfigFor<'command'>;
    config.command.cancelCommand = `env -0 > "${setup.records}/cancel-env"`;
    const text = JSON.stringify(testCase.assignment);
    const plan = await planAssignment(text, config, true, { hostEnv: setup.hostEnv });
    const backend = await createBackend('command', setup);
    await runOnBackend(backend, text, config);
    await backend.cancelTask!({ taskId: 'user-1', executionId: String(testCase.assignment.execution_id) });
    const planned = entries(launchOf(plan).cancelEnvironment);
    expect(planned).toMatchObject({ OZ_RUN_ID: 'user-1', WARP_RUN_ID: 'user-1', OZ_WORKER_BACKEND: 'command', WARP_WORKER_BACKEND: 'command' });
    expect(hookEnv(join(setup.records, 'cancel-env'))).toMatchObject(planned);
  });

  it('shows the Docker sidecar_image override as the run uses it (only where the assignment has an /agent sidecar)', async () => {
    const { assignment: sidecars } = CASES.find((c) => c.name === 'sidecars and an instance shape')!;
    // Its own task id: the table's run of this assignment left a container of the same run id in the fake engine.
    const testCase: Case = { name: 'sidecar override', assignment: { ...sidecars, task_id: 'sidecar-override', task: task('sidecar-override') } };
    const setup = await setUp('docker', testCase);
    const config = setup.config as WorkerConfigFor<'docker'>;
    config.docker.sidecarImage = 'mirror.internal/agent-sidecar:2';
    const text = JSON.stringify(testCase.assignment);
    const plan = await planAssignment(text, config, true, { hostEnv: setup.hostEnv });
    expect(launchOf(plan).container.HostConfig.Binds).toContain('(volume of mirror.internal/agent-sidecar:2):/agent:ro');
    const backend = await createBackend('docker', setup);
    await runOnBackend(backend, text, config);
    expectSameLaunch('docker', plan, launched('docker', setup, plan)!);
    expect(engine.calls('POST', /^\/images\/create$/).map((call) => call.query.get('fromImage'))).toContain('mirror.internal/agent-sidecar');
  });
});
