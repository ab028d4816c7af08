// The direct backend with real processes in temp directories. A small shell
// script stands in for `oz`: it records its argv, cwd and exact environment,
// then behaves as FAKE_MODE asks.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend, TaskParams } from '../../src/task/contract.js';
import { createDirectBackend } from '../../src/backends/direct/direct-backend.js';
import type { DirectBackendConfig, WorkerConfigFor } from '../../src/config/worker-config.js';
import type { Logger } from '../../src/log/logger.js';
import type { Task } from '../../src/protocol/messages.js';
import { TaskCancelled, TaskFailure } from '../../src/task/failure.js';
import { rejection } from '../support/assertions.js';
import { testConfig } from '../support/test-config.js';

const API_KEY = 'wk_worker_secret_key_42';

const FAKE_OZ = `#!/bin/sh
rec="$RECORD_DIR/$TASK_ID"
printf '%s\\0' "$@" > "$rec.args"
cat /proc/$$/environ > "$rec.env"
pwd -P > "$rec.cwd"
echo "hello from agent"
echo "warning on stderr" >&2
case "$FAKE_MODE" in
  exit) echo $$ > "$rec.pid"; exit "$FAKE_EXIT" ;;
  signal) echo $$ > "$rec.pid"; kill -TERM $$ ;;
  sleep) sleep 1000 & echo $! > "$rec.child"; echo $$ > "$rec.pid"; wait ;;
  trap) trap 'echo term > "$rec.term"' TERM; echo $$ > "$rec.pid"; while :; do sleep 0.05; done ;;
  orphan) sleep 1000 & echo $! > "$rec.child"; echo $$ > "$rec.pid"; exit 0 ;;
esac
echo $$ > "$rec.pid"
exit 0
`;

let tmp: string;
let records: string;
let root: string;
let ozPath: string;
let logs: Array<Record<string, unknown>>;
let log: Logger;
const backends: Backend[] = [];

beforeEach(() => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'oz-direct-')));
  records = join(tmp, 'records');
  root = join(tmp, 'workspaces');
  mkdirSync(records);
  mkdirSync(join(tmp, 'bin'));
  ozPath = join(tmp, 'bin', 'oz');
  writeFileSync(ozPath, FAKE_OZ);
  chmodSync(ozPath, 0o755);
  logs = [];
  log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
});

afterEach(async () => {
  for (const backend of backends.splice(0)) await backend.shutdown();
  rmSync(tmp, { recursive: true, force: true });
});

function hostEnv(): NodeJS.ProcessEnv {
  return {
    HOME: process.env.HOME,
    PATH: process.env.PATH,
    TMPDIR: tmp,
    USER: 'worker-user',
    SOME_HOST_VAR: 'host-only',
    WARP_API_KEY: API_KEY,
    WARP_API_KEY_FILE: '/etc/oz/api-key',
  };
}

function config(
  options: { direct?: Partial<DirectBackendConfig>; cleanup?: boolean; cancelGraceMs?: number; operatorEnv?: Record<string, string> } = {},
): WorkerConfigFor<'direct'> {
  return testConfig({
    apiKey: API_KEY,
    backend: 'direct',
    cleanup: options.cleanup ?? true,
    cancelGraceMs: options.cancelGraceMs ?? 2_000,
    operatorEnv: options.operatorEnv ?? {},
    direct: { workspaceRoot: root, targetDir: '', ozPath, setupCommand: '', teardownCommand: '', ...options.direct },
  });
}

async function backend(options: Parameters<typeof config>[0] = {}, env: NodeJS.ProcessEnv = hostEnv()): Promise<Backend> {
  const created = await createDirectBackend(config(options), { log, hostEnv: env });
  backends.push(created);
  return created;
}

function params(taskId: string, options: { env?: Record<string, string>; task?: Partial<Task> } = {}): TaskParams {
  const extra = Object.entries({ RECORD_DIR: records, ...options.env }).map(([k, v]) => `${k}=${v}`);
  return {
    taskId,
    executionId: 'exec-1',
    task: { id: taskId, ...options.task },
    args: ['agent', 'run', '--task-id', taskId, '--sandboxed', '--mcp', '{"gh":{"token":"mcp-secret"}}'],
    mcpServers: '{"gh":{"token":"mcp-secret"}}',
    env: [`TASK_ID=${taskId}`, 'GIT_TERMINAL_PROMPT=0', 'GH_PROMPT_DISABLED=1', 'WARP_SERVER_ROOT_URL=https://app.warp.dev', ...extra],
    image: 'ubuntu:22.04',
    sidecars: [],
    instanceShape: undefined,
  };
}

function run(b: Backend, p: TaskParams, controller = new AbortController()) {
  return b.executeTask({ params: p, signal: controller.signal, log });
}

interface AgentRecord {
  args: string[];
  env: Record<string, string>;
  cwd: string;
}

function parseEnvBlock(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of text.split('\0')) {
    if (!entry) continue;
    const at = entry.indexOf('=');
    env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return env;
}

function record(taskId: string): AgentRecord | undefined {
  const base = join(records, taskId);
  if (!existsSync(`${base}.pid`)) return undefined;
  return {
    args: readFileSync(`${base}.args`, 'utf8').split('\0').slice(0, -1),
    env: parseEnvBlock(readFileSync(`${base}.env`, 'utf8')),
    cwd: readFileSync(`${base}.cwd`, 'utf8').trim(),
  };
}

function readPid(file: string): number {
  return Number(readFileSync(file, 'utf8').trim());
}

async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Alive and not a zombie (orphans here are reparented to a PID 1 that does not reap them). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

describe('direct backend start-up', () => {
  it('fails with a clear one-line message when oz is not on PATH', async () => {
    mkdirSync(join(tmp, 'empty-bin'));
    const error = await rejection(createDirectBackend(config({ direct: { ozPath: '' } }), { log, hostEnv: { PATH: join(tmp, 'empty-bin') } }));
    expect((error as Error).message).toBe('oz CLI not found in PATH; install it or set backend.direct.oz_path in the config file (or --oz-path)');
  });

  it('finds oz on the worker PATH when oz_path is not set, and runs it', async () => {
    const b = await backend({ direct: { ozPath: '' } }, { ...hostEnv(), PATH: `${join(tmp, 'bin')}:${process.env.PATH}` });
    await expect(run(b, params('found'))).resolves.toEqual({ kind: 'completed' });
    expect(record('found')).toBeDefined();
    expect(logs.some((l) => l.msg === `Using oz CLI at: ${ozPath}`)).toBe(true);
  });

  it('creates a missing workspace root with mode 0700', async () => {
    root = join(tmp, 'deep', 'workspaces');
    await backend();
    expect(statSync(root).mode & 0o777).toBe(0o700);
  });

  it('refuses a target directory that does not exist or is a file', async () => {
    const missing = join(tmp, 'nope');
    await expect(createDirectBackend(config({ direct: { targetDir: missing } }), { log, hostEnv: hostEnv() })).rejects.toThrow(
      `target directory ${missing} does not exist`,
    );
    const file = join(tmp, 'file');
    writeFileSync(file, '');
    await expect(createDirectBackend(config({ direct: { targetDir: file } }), { log, hostEnv: hostEnv() })).rejects.toThrow(
      `target directory ${file} is not a directory`,
    );
  });
});

describe('direct backend environment', () => {
  it('gives the agent only HOME, TMPDIR, PATH and the task env; never the worker key', async () => {
    const b = await backend({ operatorEnv: { FROM_MAP: 'map', TASK_ID: 'overridden-by-map' } });
    const p = params('env-1', { env: { GITHUB_ACCESS_TOKEN: 'ghp_task' }, task: { agent_config_snapshot: { harness: { type: ' claude ' } } } });
    await expect(run(b, p)).resolves.toEqual({ kind: 'completed' });
    const rec = record('overridden-by-map')!;
    const ws = join(root, 'env-1');
    expect(rec.cwd).toBe(ws);
    expect(rec.args).toEqual(p.args);
    expect(rec.env).toEqual({
      HOME: process.env.HOME,
      TMPDIR: tmp,
      PATH: process.env.PATH,
      TASK_ID: 'overridden-by-map',
      GIT_TERMINAL_PROMPT: '0',
      GH_PROMPT_DISABLED: '1',
      WARP_SERVER_ROOT_URL: 'https://app.warp.dev',
      RECORD_DIR: records,
      GITHUB_ACCESS_TOKEN: 'ghp_task',
      FROM_MAP: 'map',
      CLAUDE_CONFIG_DIR: join(ws, '.claude'),
      GIT_CONFIG_GLOBAL: join(ws, '.gitconfig'),
      // Finds the agent's processes again, even those that leave its process group.
      OZWORKER_TASK_MARK: expect.stringMatching(/^[0-9a-f]{16}\.agent$/),
    });
  });

  it('passes a WARP_API_KEY the server sent for the task (the task credential), not the worker one', async () => {
    const b = await backend();
    await run(b, params('key-1', { env: { WARP_API_KEY: 'task-scoped-key' } }));
    expect(record('key-1')!.env.WARP_API_KEY).toBe('task-scoped-key');
  });

  it('codex harness state goes to CODEX_HOME in the workspace', async () => {
    const b = await backend();
    await run(b, params('codex-1', { task: { agent_config_snapshot: { harness: { type: 'codex' } } } }));
    expect(record('codex-1')!.env.CODEX_HOME).toBe(join(root, 'codex-1', '.codex'));
  });

  it('runs setup with OZ_* variables and an isolated git config; its env file reaches the agent but cannot move the git config', async () => {
    const setupRecord = join(tmp, 'setup-env');
    const gitCopy = join(tmp, 'gitconfig-copy');
    const setupCommand = [
      `cat /proc/$$/environ > ${setupRecord}`,
      'git config --global user.name setup-user',
      `cp "$GIT_CONFIG_GLOBAL" ${gitCopy}`,
      `ls -l "$OZ_ENVIRONMENT_FILE" > ${setupRecord}.mode`,
      `printf 'FROM_SETUP=hello\\nexport QUOTED="a b"\\nGIT_CONFIG_GLOBAL=/elsewhere\\nUSES_EARLIER=\${FROM_SETUP}-x\\n' > "$OZ_ENVIRONMENT_FILE"`,
    ].join(' && ');
    const b = await backend({ direct: { setupCommand }, operatorEnv: { FROM_MAP: 'map' } });
    await expect(run(b, params('setup-1'))).resolves.toEqual({ kind: 'completed' });

    const ws = join(root, 'setup-1');
    const setup = parseEnvBlock(readFileSync(setupRecord, 'utf8'));
    expect(setup).toMatchObject({
      OZ_WORKSPACE_ROOT: ws,
      OZ_WORKER_BACKEND: 'direct',
      OZ_RUN_ID: 'setup-1',
      GIT_CONFIG_GLOBAL: join(ws, '.gitconfig'),
      SOME_HOST_VAR: 'host-only',
      USER: 'worker-user',
      FROM_MAP: 'map',
      TASK_ID: 'setup-1',
    });
    expect(setup.OZ_ENVIRONMENT_FILE).toMatch(new RegExp(`^${ws}/oz-env-`));
    expect(setup.WARP_API_KEY).toBeUndefined();
    expect(setup.WARP_API_KEY_FILE).toBeUndefined();
    expect(readFileSync(`${setupRecord}.mode`, 'utf8')).toMatch(/^-rw------- /);
    expect(readFileSync(gitCopy, 'utf8')).toContain('name = setup-user');

    const agent = record('setup-1')!.env;
    expect(agent).toMatchObject({ FROM_SETUP: 'hello', QUOTED: 'a b', USES_EARLIER: 'hello-x', GIT_CONFIG_GLOBAL: join(ws, '.gitconfig') });
    expect(Object.keys(agent).filter((k) => k.startsWith('OZ_'))).toEqual([]);
    expect(existsSync(ws)).toBe(false);
  });

  it('ignores a malformed env file (with a warning) and still runs the agent', async () => {
    const b = await backend({ direct: { setupCommand: `printf 'GOOD=1\\nBAD-NAME=2\\n' > "$OZ_ENVIRONMENT_FILE"` } });
    await expect(run(b, params('bad-env'))).resolves.toEqual({ kind: 'completed' });
    expect(record('bad-env')!.env.GOOD).toBeUndefined();
    expect(logs.some((l) => l.level === 40 && String(l.msg).startsWith('Failed to parse environment file: line 2'))).toBe(true);
  });
});

describe('direct backend outcomes', () => {
  it('logs agent output line by line with its stream', async () => {
    const b = await backend();
    await run(b, params('out-1'));
    expect(logs).toContainEqual(expect.objectContaining({ stream: 'stdout', msg: 'hello from agent' }));
    expect(logs).toContainEqual(expect.objectContaining({ stream: 'stderr', msg: 'warning on stderr' }));
    expect(JSON.stringify(logs)).not.toContain('mcp-secret');
  });

  it('reports a non-zero exit as agent_invocation with the exit code', async () => {
    const b = await backend();
    const error = await rejection(run(b, params('exit-2', { env: { FAKE_MODE: 'exit', FAKE_EXIT: '2' } })));
    expect(error).toBeInstanceOf(TaskFailure);
    expect(error).toMatchObject({ reason: 'agent_invocation', exitCode: 2, message: 'oz agent exited with error: exit status 2' });
  });

  it('reports a SIGTERM from outside as exit code 143 and "signal: terminated"', async () => {
    const b = await backend();
    const error = await rejection(run(b, params('sig-1', { env: { FAKE_MODE: 'signal' } })));
    expect(error).toMatchObject({ reason: 'agent_invocation', exitCode: 143, message: 'oz agent exited with error: signal: terminated' });
  });

  it('reports an oz path that cannot be started, naming the path and the setting', async () => {
    const missing = join(tmp, 'no-such-oz');
    const b = await backend({ direct: { ozPath: missing } });
    const error = await rejection(run(b, params('nostart')));
    expect(error).toMatchObject({ reason: 'agent_invocation', exitCode: 0 });
    expect((error as Error).message).toBe(
      `oz agent could not be started: fork/exec ${missing}: no such file or directory; check that backend.direct.oz_path (or --oz-path) points to the oz CLI`,
    );
  });

  it('reports a failing setup as setup_command and does not start the agent', async () => {
    const b = await backend({ direct: { setupCommand: 'echo preparing; exit 3' } });
    const error = await rejection(run(b, params('setup-fail')));
    expect(error).toMatchObject({ reason: 'setup_command', exitCode: 0, message: 'setup command failed: exit status 3' });
    expect(record('setup-fail')).toBeUndefined();
    expect(logs).toContainEqual(expect.objectContaining({ stream: 'stdout', command: 'setup', msg: 'preparing' }));
    expect(existsSync(join(root, 'setup-fail'))).toBe(false);
  });

  it.each(['../escape', 'a/../../escape', '/abs/path', '..', '', 'a\\b'])('refuses the task id %j without touching the disk', async (id) => {
    const b = await backend();
    const error = await rejection(run(b, params(id)));
    expect(error).toBeInstanceOf(TaskFailure);
    expect(error).toMatchObject({ reason: 'workspace_setup' });
    expect((error as Error).message).toMatch(/^invalid task ID for workspace path: invalid task ID /);
    expect(readdirSync(root)).toEqual([]);
    expect(existsSync(join(tmp, 'escape'))).toBe(false);
  });

  it('stops processes the agent left running when it exits', async () => {
    const b = await backend();
    await expect(run(b, params('orphan-1', { env: { FAKE_MODE: 'orphan' } }))).resolves.toEqual({ kind: 'completed' });
    const child = readPid(join(records, 'orphan-1.child'));
    await until(() => !alive(child), 'the background child to stop');
  });
});

describe('direct backend cancellation', () => {
  it('stops the agent and the processes it started, and reports the cancellation', async () => {
    const b = await backend();
    const controller = new AbortController();
    const execution = run(b, params('cancel-1', { env: { FAKE_MODE: 'sleep' } }), controller);
    const pid = await until(() => existsSync(join(records, 'cancel-1.pid')) && readPid(join(records, 'cancel-1.pid')), 'the agent to start');
    const child = readPid(join(records, 'cancel-1.child'));
    expect(alive(pid) && alive(child)).toBe(true);
    controller.abort('user');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    await until(() => !alive(pid) && !alive(child), 'agent and grandchild to exit');
    expect(existsSync(join(root, 'cancel-1'))).toBe(false);
  });

  it('sends SIGTERM first and SIGKILL after the grace period to an agent that ignores SIGTERM', async () => {
    const b = await backend({ cancelGraceMs: 300 });
    const controller = new AbortController();
    const execution = run(b, params('trap-1', { env: { FAKE_MODE: 'trap' } }), controller);
    const pid = await until(() => existsSync(join(records, 'trap-1.pid')) && readPid(join(records, 'trap-1.pid')), 'the agent to start');
    controller.abort('user');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    expect(existsSync(join(records, 'trap-1.term'))).toBe(true);
    await until(() => !alive(pid), 'the agent to be killed');
    expect(logs.some((l) => String(l.msg).includes('sent SIGKILL'))).toBe(true);
  });

  it('stops a running setup command and its children, and never starts the agent', async () => {
    const started = join(tmp, 'setup-started');
    const b = await backend({ direct: { setupCommand: `sleep 1000 & echo $! > ${started}.child; echo $$ > ${started}; wait` } });
    const controller = new AbortController();
    const execution = run(b, params('cancel-setup'), controller);
    const shell = await until(() => existsSync(started) && readPid(started), 'setup to start');
    const child = readPid(`${started}.child`);
    controller.abort('shutdown');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    await until(() => !alive(shell) && !alive(child), 'setup and its child to exit');
    expect(record('cancel-setup')).toBeUndefined();
  });

  it('runs teardown after a cancel, without the worker key or the task env', async () => {
    const marker = join(tmp, 'teardown');
    const b = await backend({ direct: { teardownCommand: `cat /proc/$$/environ > ${marker}` } });
    const controller = new AbortController();
    const execution = run(b, params('cancel-td', { env: { FAKE_MODE: 'sleep' } }), controller);
    await until(() => existsSync(join(records, 'cancel-td.pid')), 'the agent to start');
    controller.abort('user');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    const env = parseEnvBlock(readFileSync(marker, 'utf8'));
    expect(env).toMatchObject({
      OZ_RUN_ID: 'cancel-td',
      OZ_WORKER_BACKEND: 'direct',
      OZ_WORKSPACE_ROOT: join(root, 'cancel-td'),
      GIT_CONFIG_GLOBAL: join(root, 'cancel-td', '.gitconfig'),
      SOME_HOST_VAR: 'host-only',
    });
    expect(env.WARP_API_KEY).toBeUndefined();
    expect(env.RECORD_DIR).toBeUndefined();
  });
});

describe('direct backend cleanup', () => {
  it('removes the workspace and the env file after the task', async () => {
    const b = await backend({ direct: { teardownCommand: `ls -A > ${join(tmp, 'listing')}` } });
    await run(b, params('clean-1'));
    expect(existsSync(join(root, 'clean-1'))).toBe(false);
    // Teardown ran in the workspace after the env file was deleted.
    expect(readFileSync(join(tmp, 'listing'), 'utf8')).not.toMatch(/oz-env-/);
  });

  it('with cleanup disabled keeps the workspace but still runs teardown and deletes the env file', async () => {
    const marker = join(tmp, 'teardown-ran');
    const b = await backend({ cleanup: false, direct: { teardownCommand: `touch ${marker}` } });
    await run(b, params('keep-1'));
    const ws = join(root, 'keep-1');
    expect(existsSync(ws)).toBe(true);
    expect(readdirSync(ws).filter((f) => f.startsWith('oz-env-'))).toEqual([]);
    expect(existsSync(marker)).toBe(true);
    await b.shutdown();
    expect(existsSync(ws)).toBe(true);
  });

  it('stops a teardown that outlives its bound, without changing the task result', async () => {
    const created = await createDirectBackend(config({ cancelGraceMs: 200, direct: { teardownCommand: 'sleep 1000' } }), {
      log,
      hostEnv: hostEnv(),
      teardownTimeoutMs: 200,
    });
    backends.push(created);
    await expect(run(created, params('slow-td'))).resolves.toEqual({ kind: 'completed' });
    expect(logs.some((l) => l.msg === 'Teardown command did not finish within 200 ms and was stopped')).toBe(true);
    expect(existsSync(join(root, 'slow-td'))).toBe(false);
  });

  it('target-dir mode: runs in the directory, git config in a temporary dir that is removed, directory kept', async () => {
    const target = join(tmp, 'checkout');
    mkdirSync(target);
    writeFileSync(join(target, 'README'), 'keep me');
    const b = await backend({ direct: { targetDir: target } });
    await expect(run(b, params('td-1'))).resolves.toEqual({ kind: 'completed' });
    const rec = record('td-1')!;
    expect(rec.cwd).toBe(target);
    expect(rec.env.GIT_CONFIG_GLOBAL).toMatch(new RegExp(`^${tmp}/oz-gitconfig-[^/]+/\\.gitconfig$`));
    expect(existsSync(join(rec.env.GIT_CONFIG_GLOBAL!, '..'))).toBe(false);
    expect(readdirSync(target)).toEqual(['README']);
    expect(existsSync(root)).toBe(false);
  });

  it('shutdown waits for a stopping task and leaves directories it did not create alone', async () => {
    const b = await backend();
    const foreign = join(root, 'not-a-task-of-ours');
    mkdirSync(foreign);
    const controller = new AbortController();
    const execution = run(b, params('sd-1', { env: { FAKE_MODE: 'sleep' } }), controller);
    await until(() => existsSync(join(records, 'sd-1.pid')), 'the agent to start');
    controller.abort('shutdown');
    await b.shutdown();
    expect(existsSync(join(root, 'sd-1'))).toBe(false);
    expect(existsSync(foreign)).toBe(true);
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
  });
});
