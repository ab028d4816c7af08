// The real worker (through its bin) on the direct backend against the fake
// dispatch server, with the recording `oz` stand-in as the agent.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDirectWorker, API_KEY, type DirectHarness } from '../support/direct-worker.js';
import { alive } from '../support/assertions.js';
import { assignment } from '../support/fake-dispatch-server.js';

let harness: DirectHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function connected(options: Parameters<typeof startDirectWorker>[0] = {}): Promise<DirectHarness> {
  harness = await startDirectWorker(options);
  await harness.server.waitForConnection();
  return harness;
}

describe('worker on the direct backend', () => {
  it('authenticates with the bearer key and worker_id, then runs a team task with team sharing', async () => {
    const h = await connected();
    expect(h.server.handshakes[0]).toMatchObject({ authorization: `Bearer ${API_KEY}`, workerId: 'it-worker' });
    h.server.assign(assignment('team-1', { task: { owner: { Type: 'TEAM', Id: 42 } } }));
    await h.server.waitForMessage('task_completed', 'team-1');
    expect(h.server.messagesFor('team-1').map((m) => m.type)).toEqual(['task_claimed', 'task_completed']);
    expect(h.server.messagesFor('team-1')[0]?.data).toEqual({ task_id: 'team-1', worker_id: 'it-worker' });
    const record = h.record('team-1')!;
    expect(record.argv.slice(0, 6)).toEqual(['agent', 'run', '--share', 'team:edit', '--task-id', 'team-1']);
    expect(record.argv.filter((a) => a === 'team:edit')).toHaveLength(1);
  });

  it.each([
    ['user-owned', { Type: 'USER', Id: 7 }],
    ['owner-less', undefined],
    ['null owner', null],
    ['lower-case type', { Type: 'team', Id: 42 }],
  ])('gives a %s task no team sharing', async (_name, owner) => {
    const h = await connected();
    h.server.assign(assignment('t', { task: owner === undefined ? {} : { owner } }));
    await h.server.waitForMessage('task_completed', 't');
    expect(h.record('t')!.argv).not.toContain('team:edit');
    expect(h.record('t')!.argv.slice(0, 4)).toEqual(['agent', 'run', '--task-id', 't']);
  });

  it('gives the agent only HOME, TMPDIR, PATH and the task env — never the worker key', async () => {
    const h = await connected({ env: { SOME_HOST_VAR: 'host-only' }, args: ['-e', 'FROM_FLAG=a,b=c'] });
    h.server.assign(assignment('env-1', { env_vars: { GITHUB_ACCESS_TOKEN: 'ghp_task_secret_abcdef' } }));
    await h.server.waitForMessage('task_completed', 'env-1');
    const { env, cwd } = h.record('env-1')!;
    expect(env.WARP_API_KEY).toBeUndefined();
    expect(env.SOME_HOST_VAR).toBeUndefined();
    expect(env).toMatchObject({
      TASK_ID: 'env-1',
      GIT_TERMINAL_PROMPT: '0',
      GH_PROMPT_DISABLED: '1',
      WARP_SERVER_ROOT_URL: 'https://app.warp.dev',
      GITHUB_ACCESS_TOKEN: 'ghp_task_secret_abcdef',
      FROM_FLAG: 'a,b=c',
      GIT_CONFIG_GLOBAL: join(h.workspaceRoot, 'env-1', '.gitconfig'),
    });
    expect(cwd).toBe(join(h.workspaceRoot, 'env-1'));
    // cleanup removes the workspace once the task is over
    await h.server.until(() => !existsSync(join(h.workspaceRoot, 'env-1')), 5_000, 'the workspace to be removed');
  });

  it('reports a non-zero agent exit as task_failed with exit code and reason', async () => {
    const h = await connected();
    h.server.assign(assignment('fail-1', { env_vars: { FAKE_OZ_EXIT: '3' } }));
    const failed = await h.server.waitForMessage('task_failed', 'fail-1');
    expect(failed.data).toMatchObject({ failure_reason: 'agent_invocation', exit_code: 3 });
    expect(failed.data.message).toBe('Failed to execute task: oz agent exited with error: exit status 3');
  });

  it('normalises a signal death to 128+signal', async () => {
    const h = await connected();
    h.server.assign(assignment('sig-1', { env_vars: { FAKE_OZ_SIGNAL: 'SIGTERM' } }));
    const failed = await h.server.waitForMessage('task_failed', 'sig-1');
    expect(failed.data).toMatchObject({ failure_reason: 'agent_invocation', exit_code: 143 });
    expect(failed.data.message).toMatch(/signal: terminated/);
  });

  it('cancels a running task: agent and its children stop, server sees CANCELLED', async () => {
    const h = await connected();
    h.server.assign(assignment('c-1', { env_vars: { FAKE_OZ_SLEEP_MS: '60000', FAKE_OZ_CHILD: '1' } }));
    const record = await h.waitForRecord('c-1');
    h.server.cancel('c-1');
    const done = await h.server.waitForMessage('task_completed', 'c-1');
    expect(done.data).toEqual({ task_id: 'c-1', execution_id: 'exec-c-1', message: 'Task cancelled by user request.', task_state: 'CANCELLED' });
    await h.server.until(() => !alive(record.pid) && !alive(record.childPid!), 5_000, 'agent processes to exit');
  });

  it('rejects beyond --max-concurrent-tasks and runs nothing for the rejected task', async () => {
    const h = await connected({ args: ['--max-concurrent-tasks', '1'] });
    h.server.assign(assignment('cap-1', { env_vars: { FAKE_OZ_SLEEP_MS: '60000' } }));
    await h.waitForRecord('cap-1');
    h.server.assign(assignment('cap-2'));
    const rejected = await h.server.waitForMessage('task_rejected', 'cap-2');
    expect(rejected.data.reason).toMatch(/^at_capacity: /);
    expect(h.record('cap-2')).toBeUndefined();
    expect(h.server.messagesFor('cap-2').map((m) => m.type)).toEqual(['task_rejected']);
  });

  it('does not run a task twice when its assignment is re-sent', async () => {
    const h = await connected();
    h.server.assign(assignment('dup-1', { env_vars: { FAKE_OZ_SLEEP_MS: '1500' } }));
    await h.waitForRecord('dup-1');
    h.server.assign(assignment('dup-1', { env_vars: { FAKE_OZ_SLEEP_MS: '1500' } }));
    await h.server.waitForMessage('task_completed', 'dup-1');
    const types = h.server.messagesFor('dup-1').map((m) => m.type);
    expect(types.filter((t) => t === 'task_completed')).toHaveLength(1);
    expect(h.worker.logs.filter((l) => l.msg === 'Starting task execution' && l.taskId === 'dup-1')).toHaveLength(1);
  });

  it('survives hostile frames and still runs the next task', async () => {
    const h = await connected();
    for (const bad of [
      '{not json',
      '[]',
      '"text"',
      JSON.stringify({ type: 'task_assignment', data: null }),
      JSON.stringify({ type: 'task_assignment', data: { task_id: 'nul', task: null } }),
      JSON.stringify({ type: 'task_assignment', data: { task_id: 'typ', task: { id: 'typ', agent_config_snapshot: { idle_timeout_minutes: 1.5 } } } }),
      JSON.stringify({ type: 'task_assignment', data: { task_id: 'bad', task: { id: 'bad', owner: { Type: 'TEAM', Id: '42' } } } }),
      JSON.stringify({ type: 'task_cancellation' }),
      JSON.stringify({ type: 'heartbeat', data: {} }),
      JSON.stringify({ type: 'task_assignment', data: { __proto__: { polluted: true }, task_id: 'proto', task: { id: 'proto' } } }),
    ]) {
      h.server.send(bad);
    }
    h.server.assign(assignment('after'));
    await h.server.waitForMessage('task_completed', 'after');
    expect(h.server.messagesFor('nul')).toEqual([{ type: 'task_failed', data: expect.objectContaining({ task_id: 'nul', failure_reason: 'unknown' }) }]);
    expect(h.server.messagesFor('typ')[0]?.data.message).toMatch(/idle_timeout_minutes/);
    expect(h.server.messagesFor('bad')[0]?.data.message).toMatch(/owner\.Id/);
    expect(h.worker.child.exitCode).toBeNull();
  });

  it.each(['../escape', 'a/../../escape', '/abs/path', '..', 'a\\b'])('refuses the path-traversal task id %j', async (id) => {
    const h = await connected();
    h.server.assign(assignment(id));
    const failed = await h.server.waitForMessage('task_failed', id);
    expect(failed.data.failure_reason).toBe('workspace_setup');
    expect(existsSync(join(h.root, 'escape'))).toBe(false);
  });

  it('reconnects after the connection drops and delivers a status produced during the outage', async () => {
    const h = await connected();
    h.server.assign(assignment('out-1', { env_vars: { FAKE_OZ_SLEEP_MS: '1500' } }));
    await h.waitForRecord('out-1');
    h.server.refuseWith = 503;
    h.server.dropConnections();
    // The task finishes while the server refuses connections.
    await h.worker.waitForLog((l) => l.msg === 'Task completed' && l.taskId === 'out-1');
    expect(h.server.received.filter((m) => m.type === 'task_completed')).toHaveLength(0);
    h.server.refuseWith = undefined;
    await h.server.waitForMessage('task_completed', 'out-1');
    expect(h.server.handshakes.length).toBeGreaterThan(2);
  });

  it('on SIGTERM stops the running task, reports it, closes with 1000 and exits 0', async () => {
    const h = await connected();
    h.server.assign(assignment('drain-1', { env_vars: { FAKE_OZ_SLEEP_MS: '60000' } }));
    const record = await h.waitForRecord('drain-1');
    h.worker.signal('SIGTERM');
    const exit = await h.worker.exited;
    expect(exit.code).toBe(0);
    const failed = h.server.messagesFor('drain-1').find((m) => m.type === 'task_failed');
    expect(failed?.data.failure_reason).toBe('graceful_shutdown');
    expect(alive(record.pid)).toBe(false);
  });

  it('keeps secrets out of the logs, even at debug level', async () => {
    const h = await connected({ args: ['--log-level', 'debug'] });
    const secret = 'ghp_very_secret_task_token_987';
    h.server.assign(assignment('sec-1', { env_vars: { GITHUB_ACCESS_TOKEN: secret, FAKE_OZ_ECHO_VAR: 'GITHUB_ACCESS_TOKEN' } }));
    await h.server.waitForMessage('task_completed', 'sec-1');
    await h.worker.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('token=[redacted]'));
    h.worker.signal('SIGTERM');
    await h.worker.exited;
    expect(h.worker.output).not.toContain(secret);
    expect(h.worker.output).not.toContain(API_KEY);
  });
});
