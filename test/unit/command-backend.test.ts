// The command backend with real /bin/sh scripts in a temp directory.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend, TaskParams } from '../../src/task/contract.js';
import { commandEnv, createCommandBackend } from '../../src/backends/command/command-backend.js';
import { dispatchPayload } from '../../src/backends/command/payload.js';
import { Tail } from '../../src/backends/command/shell.js';
import type { CommandBackendConfig, WorkerConfigFor } from '../../src/config/worker-config.js';
import type { Logger } from '../../src/log/logger.js';
import { TaskCancelled, TaskFailure } from '../../src/task/failure.js';
import { tempDir } from '../support/worker-process.js';
import { rejection } from '../support/assertions.js';
import { testConfig } from '../support/test-config.js';

const API_KEY = 'wk_worker_secret_key_77';
const SECRET = 'hunter2-super-secret';

let dir: { path: string; cleanup: () => void };
let logs: Array<Record<string, unknown>>;
let log: Logger;
const backends: Backend[] = [];

beforeEach(() => {
  dir = tempDir('command');
  logs = [];
  log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
});

afterEach(async () => {
  for (const backend of backends.splice(0)) await backend.shutdown();
  dir.cleanup();
});

const file = (name: string) => join(dir.path, name);

function script(name: string, body: string): string {
  const path = file(name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

function config(command: Partial<CommandBackendConfig>, operatorEnv: Record<string, string> = {}): WorkerConfigFor<'command'> {
  return testConfig({
    apiKey: API_KEY,
    workerId: 'cmd-worker',
    serverRootUrl: 'https://app.warp.dev',
    backend: 'command',
    operatorEnv,
    command: { dispatchCommand: 'exit 0', cancelCommand: '', dispatchTimeoutMs: 10_000, ...command },
  });
}

async function backend(
  command: Partial<CommandBackendConfig>,
  options: { operatorEnv?: Record<string, string>; hostEnv?: NodeJS.ProcessEnv } = {},
): Promise<Backend> {
  const hostEnv = options.hostEnv ?? { PATH: process.env.PATH, HOME: dir.path, WARP_API_KEY: API_KEY, HOST_ONLY: 'from-host' };
  const created = await createCommandBackend(config(command, options.operatorEnv), { log, hostEnv });
  backends.push(created);
  return created;
}

function params(taskId = 'task-1'): TaskParams {
  return {
    taskId,
    executionId: `exec-${taskId.slice(5) || '1'}`,
    task: { id: taskId, title: 'integration task', owner: { Type: 'TEAM', Id: 1 } },
    args: ['agent', 'run', '--task-id', taskId, '--sandboxed'],
    mcpServers: undefined,
    env: [`TASK_ID=${taskId}`, 'GIT_TERMINAL_PROMPT=0', `SUPER_SECRET_TOKEN=${SECRET}`],
    image: 'ubuntu:22.04',
    sidecars: [{ image: 'docker.io/warpdotdev/warp-agent:latest', mount_path: '/agent', read_write: false }],
    instanceShape: undefined,
  };
}

function run(b: Backend, p: TaskParams, controller = new AbortController()) {
  return b.executeTask({ params: p, signal: controller.signal, log: log.child({ taskId: p.taskId }) });
}

function envFile(path: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\0')
      .filter(Boolean)
      .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
  );
}

describe('dispatch', () => {
  it('hands the payload to the command on stdin and reports it handed off (Go DispatchesPayloadOnStdin)', async () => {
    const b = await backend({ dispatchCommand: `cat > ${file('payload.json')}` });
    expect(await run(b, params())).toEqual({ kind: 'handedOff' });
    const text = readFileSync(file('payload.json'), 'utf8');
    // Exactly the payload bytes: compact, no trailing newline.
    expect(text).toBe(dispatchPayload(params(), { serverRootUrl: 'https://app.warp.dev', workerId: 'cmd-worker' }));
    const payload = JSON.parse(text) as Record<string, unknown>;
    expect(payload).toMatchObject({
      version: 1,
      run_id: 'task-1',
      execution_id: 'exec-1',
      worker_id: 'cmd-worker',
      docker_image: 'ubuntu:22.04',
      base_args: ['agent', 'run', '--task-id', 'task-1', '--sandboxed'],
      env: { SUPER_SECRET_TOKEN: SECRET, TASK_ID: 'task-1' },
      sidecars: [{ image: 'docker.io/warpdotdev/warp-agent:latest', mount_path: '/agent', read_write: false }],
    });
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['Dispatching task task-1 via command backend', 'Task task-1 dispatched successfully']));
  });

  it('gives the command the OZ_* variables and operator env, but no task secret and not the worker key', async () => {
    const record = script('record.sh', `cat /proc/$$/environ > ${file('env')}; printf '%s\\0' "$0" "$@" > ${file('argv')}; cat > /dev/null`);
    const b = await backend(
      { dispatchCommand: record },
      { operatorEnv: { OPERATOR_VAR: 'ok', OZ_RUN_ID: 'spoofed', OZ_EXECUTION_ID: 'spoofed', OZ_WORKER_BACKEND: 'spoofed' } },
    );
    await run(b, params());
    const env = envFile(file('env'));
    expect(env).toMatchObject({
      OZ_RUN_ID: 'task-1',
      OZ_EXECUTION_ID: 'exec-1',
      OZ_WORKER_BACKEND: 'command',
      OZ_SERVER_ROOT_URL: 'https://app.warp.dev',
      OZ_DOCKER_IMAGE: 'ubuntu:22.04',
      OPERATOR_VAR: 'ok',
      HOST_ONLY: 'from-host',
    });
    expect(env.SUPER_SECRET_TOKEN).toBeUndefined();
    expect(env.WARP_API_KEY).toBeUndefined();
    const everything = `${readFileSync(file('env'), 'utf8')}${readFileSync(file('argv'), 'utf8')}`;
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain(API_KEY);
  });

  it('gives the worker key to a command only when the operator names it', () => {
    const env = commandEnv({ WARP_API_KEY: API_KEY, OTHER: API_KEY, PATH: '/bin' }, API_KEY, { WARP_API_KEY: API_KEY }, [['OZ_RUN_ID', 't']]);
    expect(Object.fromEntries(env)).toEqual({ PATH: '/bin', WARP_API_KEY: API_KEY, OZ_RUN_ID: 't' });
  });

  it('reports a non-zero exit with the end of stderr (dispatch_command)', async () => {
    const b = await backend({
      dispatchCommand: `cat >/dev/null; echo "connecting"; head -c 5000 /dev/zero | tr '\\0' x >&2; echo >&2; echo "quota exceeded for team" >&2; exit 7`,
    });
    const error = await rejection(run(b, params()));
    expect(error).toBeInstanceOf(TaskFailure);
    expect(error).toMatchObject({ reason: 'dispatch_command', exitCode: 0 });
    const message = (error as Error).message;
    expect(message).toMatch(/^dispatch command failed: exit status 7; stderr: …x+\nquota exceeded for team$/);
    expect(Buffer.byteLength(message)).toBeLessThan(2200);
    // Output went to the log, tagged with the stream.
    expect(logs.some((l) => l.stream === 'stdout' && l.msg === 'connecting' && l.taskId === 'task-1')).toBe(true);
  });

  it('says what failed when the shell cannot run the command', async () => {
    const b = await backend({ dispatchCommand: `${file('missing-script')}` });
    const error = await rejection(run(b, params()));
    expect((error as Error).message).toMatch(/^dispatch command failed: exit status 127; stderr: .*missing-script.*not found/);
  });

  it('times out (dispatch_timeout) and stops what the command started', async () => {
    const b = await backend({ dispatchCommand: `sleep 30 & echo $! > ${file('child')}; wait`, dispatchTimeoutMs: 300 });
    const error = await rejection(run(b, params()));
    expect(error).toMatchObject({ reason: 'dispatch_timeout' });
    expect((error as Error).message).toMatch(
      /^dispatch command timed out after 300ms: signal: terminated \(it should hand the task off and exit; raise backend.command.dispatch_timeout/,
    );
    const child = Number(readFileSync(file('child'), 'utf8'));
    await expect.poll(() => alive(child), { timeout: 5_000 }).toBe(false);
  });

  it('does not wait for a background process that keeps the output pipes open', async () => {
    const b = await backend({ dispatchCommand: `cat >/dev/null; sleep 30 & echo $! > ${file('bg')}; exit 0`, dispatchTimeoutMs: 20_000 });
    const started = Date.now();
    expect(await run(b, params())).toEqual({ kind: 'handedOff' });
    expect(Date.now() - started).toBeLessThan(15_000);
    process.kill(Number(readFileSync(file('bg'), 'utf8')), 'SIGKILL');
  });

  it('stops a running dispatch when the task is cancelled', async () => {
    const b = await backend({ dispatchCommand: `echo $$ > ${file('pid')}; sleep 30` });
    const controller = new AbortController();
    const execution = run(b, params(), controller);
    await expect.poll(() => existsSync(file('pid')), { timeout: 5_000 }).toBe(true);
    controller.abort('user');
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    expect(alive(Number(readFileSync(file('pid'), 'utf8')))).toBe(false);
  });

  it('is what the registry builds for backend: command, preserving tasks on shutdown', async () => {
    const { createBackend } = await import('../../src/backends/registry.js');
    const created = await createBackend(config({}), log);
    backends.push(created);
    expect(created.name).toBe('command');
    expect(created.preservesTasksOnShutdown).toBe(true);
  });

  it('needs a dispatch command', async () => {
    await expect(createCommandBackend(config({ dispatchCommand: '' }), { log })).rejects.toThrow(/command backend requires a dispatch command/);
  });
});

describe('cancel', () => {
  it('runs the cancel command with the run and execution ids (Go CancelTask)', async () => {
    const record = script('cancel.sh', `env > ${file('cancel-env')}; [ -t 0 ] || cat > ${file('cancel-stdin')}`);
    const b = await backend({ cancelCommand: record }, { operatorEnv: { OPERATOR_VAR: 'ok' } });
    await run(b, params());
    await b.cancelTask!({ taskId: 'task-1', executionId: 'exec-1' });
    const env = readFileSync(file('cancel-env'), 'utf8');
    expect(env).toMatch(/^OZ_RUN_ID=task-1$/m);
    expect(env).toMatch(/^OZ_EXECUTION_ID=exec-1$/m);
    expect(env).toMatch(/^OZ_WORKER_BACKEND=command$/m);
    expect(env).toMatch(/^OPERATOR_VAR=ok$/m);
    expect(env).not.toMatch(/OZ_SERVER_ROOT_URL|OZ_DOCKER_IMAGE|WARP_API_KEY/);
    expect(readFileSync(file('cancel-stdin'), 'utf8')).toBe('');
  });

  it('is a no-op without a cancel command', async () => {
    const b = await backend({});
    await run(b, params());
    await expect(b.cancelTask!({ taskId: 'task-1', executionId: 'exec-1' })).resolves.toBeUndefined();
  });

  it('reports a failing cancel command (cancel_command) with its stderr', async () => {
    const b = await backend({ cancelCommand: 'echo "no such job" >&2; exit 4' });
    const error = await rejection(b.cancelTask!({ taskId: 'task-1', executionId: 'exec-1' }));
    expect(error).toMatchObject({ reason: 'cancel_command', message: 'cancel command failed: exit status 4; stderr: no such job' });
  });

  it('runs the cancel command only after a running dispatch was stopped', async () => {
    const b = await backend({
      dispatchCommand: `trap 'sleep 0.3; echo dispatch-ended >> ${file('order')}; exit 1' TERM; cat >/dev/null; echo started > ${file('started')}; while :; do sleep 0.05; done`,
      cancelCommand: `echo cancel >> ${file('order')}`,
    });
    const controller = new AbortController();
    const execution = run(b, params(), controller);
    await expect.poll(() => existsSync(file('started')), { timeout: 5_000 }).toBe(true);
    controller.abort('user');
    await b.cancelTask!({ taskId: 'task-1', executionId: 'exec-1' });
    expect(await rejection(execution)).toBeInstanceOf(TaskCancelled);
    expect(readFileSync(file('order'), 'utf8')).toBe('dispatch-ended\ncancel\n');
  });
});

describe('stderr tail', () => {
  it('keeps only the last bytes and marks the cut', () => {
    const tail = new Tail(8);
    tail.push(Buffer.from('abcdef'));
    tail.push(Buffer.from('ghijkl'));
    expect(tail.text()).toBe('…efghijkl');
    const short = new Tail(8);
    short.push(Buffer.from('  hi \n'));
    expect(short.text()).toBe('hi');
    const multibyte = new Tail(4);
    multibyte.push(Buffer.from('ééé'));
    expect(multibyte.text()).toBe('…éé');
  });
});

/** Whether a process still runs; a zombie waiting for PID 1 to reap it counts as ended. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}
