// The local dispatch server with real workers: ownership and per-task keys,
// routing and re-queueing, cancel, restart, the tenant guard and default agents.
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type ApiClient, ApiClientError } from '../../src/local/api-client.js';
import { startLocalServer, until, ProbeWorker, type LocalServerHarness } from '../support/local-server.js';

let h: LocalServerHarness | undefined;
const probes: ProbeWorker[] = [];

afterEach(async () => {
  await Promise.all(probes.splice(0).map((p) => p.close()));
  await h?.close();
  h = undefined;
});

async function setUp(timings = {}): Promise<LocalServerHarness> {
  h = await startLocalServer({ timings });
  return h;
}

async function probe(key: string, workerId: string, deviceId?: string): Promise<ProbeWorker> {
  const p = await ProbeWorker.connect(h!.server.webSocketUrl, key, workerId, deviceId);
  probes.push(p);
  return p;
}

async function errorOf(promise: Promise<unknown>): Promise<ApiClientError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiClientError) return error;
    throw error;
  }
  throw new Error('expected the request to fail');
}

const AGENT = { model_id: 'claude-test' };

describe('ownership and per-task credentials', () => {
  it('runs a team task with --share team:edit and a team-scoped per-task key, revoked when it ends', async () => {
    const s = await setUp();
    const alice = await s.createUser('alice');
    const team = await s.createTeam('eng', { members: [alice.id], defaultAgent: AGENT });
    s.startWorker(team.key);
    const client = s.as(alice.key);
    const task = await client.submitTask({ prompt: 'fix the build', owner: { type: 'TEAM', id: team.id } });
    const done = await s.waitForTask(client, task.id, ['completed', 'failed']);
    expect(done.state).toBe('completed');

    const record = s.record(task.id)!;
    expect(record.argv.slice(0, 4)).toEqual(['agent', 'run', '--share', 'team:edit']);
    expect(record.argv).toContain('--model');
    const taskKey = record.env.WARP_API_KEY!;
    expect(taskKey).not.toBe(team.key);
    // The key was scoped to the team while the task ran; it stops working afterwards.
    const error = await errorOf(s.as(taskKey).request('GET', '/api/v1/whoami'));
    expect(error.status).toBe(401);
    const keyRow = s.server.store.principal(taskKey);
    expect(keyRow).toBeUndefined();
  });

  it('runs a user task without team sharing, with a user-scoped key', async () => {
    const s = await setUp();
    const bob = await s.createUser('bob');
    // A user key without a device id: bob's own worker.
    const worker = s.startWorker(bob.key);
    const client = s.as(bob.key);
    const task = await client.submitTask({ prompt: 'hello' });
    expect(task.owner).toEqual({ type: 'USER', id: bob.id });
    expect(task.agent_config).toBeNull();
    await s.waitForTask(client, task.id, ['completed']);
    const record = s.record(task.id)!;
    expect(record.argv).not.toContain('--share');
    expect(record.argv.slice(0, 2)).toEqual(['agent', 'run']);
    expect(record.env.WARP_API_KEY).toMatch(/^ozl_/);
    expect(worker.output).not.toContain(record.env.WARP_API_KEY);
  });

  it('issues keys whose scope follows the owner (seen by the agent while it runs)', async () => {
    const s = await setUp();
    const carol = await s.createUser('carol');
    const team = await s.createTeam('ops', { members: [carol.id], defaultAgent: AGENT });
    const teamProbe = await probe(team.key, 'fleet');
    const userProbe = await probe(carol.key, 'carols-worker');
    const teamTask = await s.as(carol.key).submitTask({ prompt: 't', owner: { type: 'TEAM', id: team.id } });
    const userTask = await s.as(carol.key).submitTask({ prompt: 'u' });
    await until(() => teamProbe.received(teamTask.id) && userProbe.received(userTask.id), 5_000, 'both assignments');
    const teamAssignment = teamProbe.assignments.find((a) => a.task_id === teamTask.id)!;
    const userAssignment = userProbe.assignments.find((a) => a.task_id === userTask.id)!;
    expect(teamAssignment.task.owner).toEqual({ Type: 'TEAM', Id: team.id });
    expect(userAssignment.task.owner).toEqual({ Type: 'USER', Id: carol.id });
    expect(await s.as(teamAssignment.env_vars.WARP_API_KEY!).request('GET', '/api/v1/whoami')).toEqual({
      kind: 'task',
      task_id: teamTask.id,
      owner: { type: 'TEAM', id: team.id },
    });
    expect(await s.as(userAssignment.env_vars.WARP_API_KEY!).request('GET', '/api/v1/whoami')).toEqual({
      kind: 'task',
      task_id: userTask.id,
      owner: { type: 'USER', id: carol.id },
    });
    // Neither probe got the other's work.
    expect(teamProbe.received(userTask.id)).toBe(false);
    expect(userProbe.received(teamTask.id)).toBe(false);
  });
});

describe('queue and routing', () => {
  it('re-queues a task the worker rejected at capacity and runs it once there is room', async () => {
    const s = await setUp();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    s.startWorker(team.key, { args: ['--max-concurrent-tasks', '1', '-e', 'FAKE_OZ_SLEEP_MS=1500'] });
    const client = s.as(team.key);
    const first = await client.submitTask({ prompt: 'slow' });
    await s.waitForTask(client, first.id, ['running']);
    // The worker holds one task; the second assignment is rejected, comes back, and runs after the first.
    const second = await client.submitTask({ prompt: 'next' });
    await until(
      async () => (await client.events(second.id, 0, 0)).events.some((e) => e.kind === 'rejected' && e.detail.includes('at_capacity')),
      10_000,
      'the rejection',
    );
    const done = await s.waitForTask(client, second.id, ['completed'], 20_000);
    const firstDone = await s.waitForTask(client, first.id, ['completed']);
    expect(Date.parse(done.claimed_at!)).toBeGreaterThanOrEqual(Date.parse(firstDone.finished_at!));
  });

  it('re-queues on at_capacity rejections from a probe worker and re-sends later', async () => {
    const s = await setUp();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const worker = await probe(team.key, 'busy');
    const client = s.as(team.key);
    const task = await client.submitTask({ prompt: 'x' });
    await until(() => worker.received(task.id), 5_000, 'assignment');
    worker.send('task_rejected', { task_id: task.id, reason: 'at_capacity: worker at maximum concurrency (1 tasks running)' });
    await until(async () => (await client.events(task.id, 0, 0)).events.some((e) => e.kind === 'rejected'), 5_000, 'rejected event');
    // Having said it is full, the busy worker is not sent the task again.
    await new Promise((r) => setTimeout(r, 500));
    expect(worker.assignments.filter((a) => a.task_id === task.id)).toHaveLength(1);
    expect((await client.task(task.id)).state).toBe('queued');
    // A second worker with room gets it.
    const other = await probe(team.key, 'free');
    await until(() => other.received(task.id), 5_000, 'assignment to the free worker');
    other.send('task_claimed', { task_id: task.id, worker_id: 'free' });
    other.send('task_completed', { task_id: task.id, message: 'Task completed successfully' });
    const done = await s.waitForTask(client, task.id, ['completed']);
    expect(done.worker_id).toBe('free');
  });

  it('re-sends an assignment that is not claimed in time, with the same execution id', async () => {
    const s = await setUp({ claimTimeoutMs: 300 });
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const worker = await probe(team.key, 'slow-to-claim');
    const client = s.as(team.key);
    const task = await client.submitTask({ prompt: 'x' });
    await until(() => worker.assignments.filter((a) => a.task_id === task.id).length >= 2, 5_000, 'the assignment to be sent again');
    const [first, second] = worker.assignments;
    expect(second!.execution_id).toBe(first!.execution_id);
    worker.send('task_claimed', { task_id: task.id, worker_id: 'slow-to-claim' });
    await s.waitForTask(client, task.id, ['running']);
    const kinds = (await client.events(task.id, 0, 0)).events.map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['assigned', 'claim_timeout', 'resent', 'claimed']));
  });

  it('re-queues an assignment whose worker disconnects before claiming it', async () => {
    const s = await setUp();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const worker = await probe(team.key, 'flaky');
    const client = s.as(team.key);
    const task = await client.submitTask({ prompt: 'x' });
    await until(() => worker.received(task.id), 5_000, 'assignment');
    await worker.close();
    await s.waitForTask(client, task.id, ['queued']);
    const again = await probe(team.key, 'steady');
    await until(() => again.received(task.id), 5_000, 'assignment to the next worker');
  });

  it('marks a running task lost when its worker stays away, unless it returns and reports', async () => {
    const s = await setUp({ lostTimeoutMs: 600 });
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const client = s.as(team.key);

    const gone = await probe(team.key, 'gone');
    const lostTask = await client.submitTask({ prompt: 'lost' });
    await until(() => gone.received(lostTask.id), 5_000, 'assignment');
    gone.send('task_claimed', { task_id: lostTask.id, worker_id: 'gone' });
    await s.waitForTask(client, lostTask.id, ['running']);
    await gone.close();
    const lost = await s.waitForTask(client, lostTask.id, ['lost'], 5_000);
    expect(lost.message).toMatch(/did not report back/);

    const back = await probe(team.key, 'back');
    const kept = await client.submitTask({ prompt: 'kept' });
    await until(() => back.received(kept.id), 5_000, 'assignment');
    back.send('task_claimed', { task_id: kept.id, worker_id: 'back' });
    await s.waitForTask(client, kept.id, ['running']);
    await back.close();
    const returned = await probe(team.key, 'back');
    returned.send('task_failed', { task_id: kept.id, message: 'oz agent exited with error: exit status 3', failure_reason: 'agent_invocation', exit_code: 3 });
    const failed = await s.waitForTask(client, kept.id, ['failed']);
    expect(failed).toMatchObject({ exit_code: 3, failure_reason: 'agent_invocation', message: 'oz agent exited with error: exit status 3' });
    // Nothing may happen: no lost-task sweep turns the reported outcome into something else.
    await new Promise((r) => setTimeout(r, 800));
    expect((await client.task(kept.id)).state).toBe('failed');
  });

  it('forwards a cancel to the worker, which stops the agent and reports CANCELLED', async () => {
    const s = await setUp();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    s.startWorker(team.key, { args: ['-e', 'FAKE_OZ_SLEEP_MS=60000'] });
    const client = s.as(team.key);
    const task = await client.submitTask({ prompt: 'long' });
    await s.waitForTask(client, task.id, ['running']);
    await until(() => s.record(task.id), 10_000, 'the agent to start');
    const { outcome } = await client.cancelTask(task.id);
    expect(outcome).toBe('requested');
    const done = await s.waitForTask(client, task.id, ['cancelled'], 20_000);
    expect(done.cancel_requested_at).not.toBeNull();
    const pid = s.record(task.id)!.pid;
    expect(() => process.kill(pid, 0)).toThrow();
    // Cancelling again is a clear conflict.
    expect((await errorOf(client.cancelTask(task.id))).code).toBe('already_finished');
  });

  it('cancels a queued task at once', async () => {
    const s = await setUp();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const client = s.as(team.key);
    const task = await client.submitTask({ prompt: 'never runs' });
    const { outcome, task: after } = await client.cancelTask(task.id);
    expect(outcome).toBe('cancelled');
    expect(after.state).toBe('cancelled');
  });
});

describe('storage', () => {
  it('keeps tasks, their history and keys across a server restart, and runs work queued before it', async () => {
    const s = await setUp();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const client = (): ApiClient => s.as(team.key);
    const queued = await client().submitTask({ prompt: 'waits for a worker' });
    await s.restart();
    const after = await client().task(queued.id);
    expect(after.state).toBe('queued');
    expect((await client().events(queued.id, 0, 0)).events[0]!.kind).toBe('created');
    s.startWorker(team.key);
    expect((await s.waitForTask(client(), queued.id, ['completed'])).state).toBe('completed');
    await s.restart();
    const kept = await client().task(queued.id);
    expect(kept.state).toBe('completed');
    expect((await client().events(queued.id, 0, 0)).events.map((e) => e.kind)).toEqual(expect.arrayContaining(['created', 'assigned', 'claimed', 'completed']));
  });
});

describe('failure details', () => {
  const details = (extra: Record<string, unknown> = {}) => ({
    kubernetes: {
      schema_version: 1,
      observation_source: 'pod_watch',
      observed_at: '2026-11-22T12:00:03.000Z',
      pod: { name: 'oz-task-x-exec-y-x7k2p', uid: 'pod-uid', phase: 'Failed', conditions: [{ type: 'Ready', status: 'False', reason: 'PodFailed' }] },
      container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'OOMKilled', raw_exit_code: 137, normalized_exit_code: 137 },
      ...extra,
    },
  });

  /** A task run by a probe worker that fails it with `failureDetails`; the server's log lines. */
  async function failedWith(failureDetails: unknown) {
    const lines: { msg: string; bytes?: number }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    h = await startLocalServer({ log });
    const team = await h.createTeam('eng', { defaultAgent: AGENT });
    const worker = await probe(team.key, 'k8s');
    const client = h.as(team.key);
    const task = await client.submitTask({ prompt: 'x' });
    await until(() => worker.received(task.id), 5_000, 'assignment');
    const { execution_id } = worker.assignments[0]!;
    worker.send('task_claimed', { task_id: task.id, worker_id: 'k8s' });
    worker.send('task_failed', {
      task_id: task.id,
      execution_id,
      message: 'Failed to execute task: OOM',
      failure_reason: 'container_oom',
      exit_code: 137,
      failure_details: failureDetails,
    });
    await h.waitForTask(client, task.id, ['failed']);
    return { client, task, lines, key: team.key };
  }

  it("keeps a failure's details with the task, shown for that task (not in lists) and across a restart", async () => {
    const { client, task, key } = await failedWith(details());
    expect((await client.task(task.id)).failure_details).toEqual(details());
    expect((await client.events(task.id, 0, 0)).task.failure_details).toEqual(details());
    expect((await client.listTasks()).tasks[0]).not.toHaveProperty('failure_details');
    await h!.restart();
    expect((await h!.as(key).task(task.id)).failure_details).toEqual(details());
  });

  it('fails the task but keeps no details over 32 KiB, saying so in the log', async () => {
    const events = Array.from({ length: 200 }, (_, i) => ({ type: 'Warning', reason: `Reason${i}-${'x'.repeat(200)}` }));
    const { client, task, lines } = await failedWith(details({ events }));
    const failed = await client.task(task.id);
    expect(failed).toMatchObject({ state: 'failed', failure_reason: 'container_oom', exit_code: 137 });
    expect(failed.failure_details).toBeNull();
    expect(lines.find((l) => /Did not keep the task's failure details: \d+ bytes is more than the 32768/.test(l.msg))?.bytes).toBeGreaterThan(32 * 1024);
  });

  it('fails the task but drops details it cannot read, saying so in the log', async () => {
    const { client, task, lines } = await failedWith({ kubernetes: { schema_version: 'one', observed_at: 'yesterday' } });
    expect(await client.task(task.id)).toMatchObject({ state: 'failed', failure_reason: 'container_oom', failure_details: null });
    expect(lines.some((l) => /Ignored the failure details of a worker's task_failed; the failure itself is kept/.test(l.msg))).toBe(true);
  });
});

describe('device workers', () => {
  it('routes by the device rules: own tasks and pinned team work while the owner is a member', async () => {
    const s = await setUp();
    const dana = await s.createUser('dana');
    const other = await s.createUser('other');
    const pinned = await s.createTeam('pinned', { members: [dana.id], defaultAgent: AGENT });
    const left = await s.createTeam('left', { members: [dana.id], defaultAgent: AGENT });
    const archived = await s.createTeam('archived', { members: [dana.id], defaultAgent: AGENT });
    const device = await s.admin.request<{ id: string }>('POST', '/api/v1/devices', { user_id: dana.id, name: 'danas-mac', id: 'danas-mac' });
    for (const team of [pinned, left, archived]) await s.admin.request('POST', `/api/v1/devices/${device.id}/pins`, { team_id: team.id });

    const submitAsTeam = (team: { id: number; key: string }, body: Record<string, unknown> = {}) =>
      s.as(team.key).submitTask({ prompt: 'p', owner: { type: 'TEAM', id: team.id }, ...body });
    const cases = {
      ownTask: await s.as(dana.key).submitTask({ prompt: 'mine' }),
      pinnedTeamRoutedHere: await submitAsTeam(pinned, { device_id: device.id }),
      pinnedTeamAfterLeaving: await submitAsTeam(left, { device_id: device.id }),
      archivedPin: await submitAsTeam(archived, { device_id: device.id }),
      unpinnedWorkOfPinnedTeam: await submitAsTeam(pinned),
      anotherUsersTask: await s.as(other.key).submitTask({ prompt: 'theirs' }),
    };
    // Routed while the pin and the membership held; they end before a worker comes.
    const pins = (await s.admin.request<{ pins: { id: number; team_id: number }[] }>('GET', '/api/v1/pins')).pins;
    const archivedPin = pins.find((p) => p.team_id === archived.id)!;
    await s.admin.request('POST', `/api/v1/pins/${archivedPin.id}/archive`);
    await s.admin.request('DELETE', `/api/v1/teams/${left.id}/members/${dana.id}`);
    const mac = await probe(dana.key, 'danas-mac-worker', device.id);
    await until(() => mac.received(cases.ownTask.id) && mac.received(cases.pinnedTeamRoutedHere.id), 5_000, 'the in-scope tasks');
    // Give the retry loop a few rounds to prove the rest never arrive.
    await new Promise((r) => setTimeout(r, 700));
    const received = Object.fromEntries(Object.entries(cases).map(([name, task]) => [name, mac.received(task.id)]));
    expect(received).toEqual({
      ownTask: true,
      pinnedTeamRoutedHere: true,
      pinnedTeamAfterLeaving: false,
      archivedPin: false,
      unpinnedWorkOfPinnedTeam: false,
      anotherUsersTask: false,
    });
    // The unpinned team work goes to the team's fleet worker instead.
    const fleet = await probe(pinned.key, 'fleet');
    await until(() => fleet.received(cases.unpinnedWorkOfPinnedTeam.id), 5_000, 'fleet assignment');
  });

  it("refuses a device id that is not the key owner's, and a team key claiming to be a device", async () => {
    const s = await setUp();
    const erin = await s.createUser('erin');
    const frank = await s.createUser('frank');
    const team = await s.createTeam('t', { defaultAgent: AGENT });
    await s.admin.request('POST', '/api/v1/devices', { user_id: frank.id, name: 'franks', id: 'franks' });
    await expect(ProbeWorker.connect(s.server.webSocketUrl, erin.key, 'w', 'franks')).rejects.toThrow(/403/);
    await expect(ProbeWorker.connect(s.server.webSocketUrl, team.key, 'w', 'franks')).rejects.toThrow(/403/);
    await expect(ProbeWorker.connect(s.server.webSocketUrl, 'ozl_not_a_key', 'w')).rejects.toThrow(/401/);
  });

  it("a real device worker runs its owner's task", async () => {
    const s = await setUp();
    const gus = await s.createUser('gus');
    await s.admin.request('POST', '/api/v1/devices', { user_id: gus.id, name: 'gus-laptop', id: 'gus-laptop' });
    s.startWorker(gus.key, { args: ['--device-id', 'gus-laptop', '--device-owner-user-id', String(gus.id)] });
    const client = s.as(gus.key);
    const task = await client.submitTask({ prompt: 'on my laptop' });
    const done = await s.waitForTask(client, task.id, ['completed']);
    expect(done.worker_id).toBe('worker-1');
  });
});

describe('tenant guard', () => {
  it('lets owners and team members reach a task; everyone else, and unknown ids, get 403 Forbidden', async () => {
    const s = await setUp();
    const owner = await s.createUser('owner');
    const member = await s.createUser('member');
    const stranger = await s.createUser('stranger');
    const team = await s.createTeam('eng', { members: [member.id], defaultAgent: AGENT });
    const userTask = await s.as(owner.key).submitTask({ prompt: 'private' });
    const teamTask = await s.as(team.key).submitTask({ prompt: 'team work' });
    const outsider = await s.createTeam('outsiders', { defaultAgent: AGENT });

    const routes = [(c: ApiClient, id: string) => c.task(id), (c: ApiClient, id: string) => c.events(id, 0, 0), (c: ApiClient, id: string) => c.cancelTask(id)];
    const forbidden = async (client: ApiClient, id: string): Promise<void> => {
      for (const route of routes) {
        const error = await errorOf(route(client, id));
        expect(error.status).toBe(403);
        expect(error.message).toBe('Forbidden');
      }
    };
    // Reads by owners succeed (cancel last, it changes state).
    expect((await s.as(owner.key).task(userTask.id)).id).toBe(userTask.id);
    expect((await s.as(member.key).task(teamTask.id)).id).toBe(teamTask.id);
    expect((await s.as(team.key).events(teamTask.id, 0, 0)).events.length).toBeGreaterThan(0);

    await forbidden(s.as(stranger.key), userTask.id);
    await forbidden(s.as(stranger.key), teamTask.id);
    await forbidden(s.as(member.key), userTask.id);
    await forbidden(s.as(outsider.key), teamTask.id);
    await forbidden(s.as(s.server.adminKey), userTask.id);
    await forbidden(s.as(owner.key), '00000000-0000-0000-0000-000000000000');
    await forbidden(s.as(owner.key), 'not-even-a-uuid');

    // The exact body of a refusal does not tell whether the task exists.
    const raw = async (id: string): Promise<string> =>
      (await fetch(`${s.server.httpUrl}/api/v1/tasks/${id}`, { headers: { Authorization: `Bearer ${stranger.key}` } })).text();
    expect(await raw(userTask.id)).toBe(await raw('00000000-0000-0000-0000-000000000000'));
    expect(JSON.parse(await raw(userTask.id))).toMatchObject({ error: 'Forbidden' });

    // Listings show only what the caller owns.
    const strangerList = await s.as(stranger.key).listTasks();
    expect(strangerList.tasks).toEqual([]);
    const memberList = await s.as(member.key).listTasks();
    expect(memberList.tasks.map((t) => t.id)).toEqual([teamTask.id]);

    expect((await s.as(owner.key).cancelTask(userTask.id)).outcome).toBe('cancelled');
    expect((await s.as(member.key).cancelTask(teamTask.id)).outcome).toBe('cancelled');
  });

  it('refuses to create tasks for owners the caller does not belong to', async () => {
    const s = await setUp();
    const a = await s.createUser('a');
    const b = await s.createUser('b');
    const team = await s.createTeam('t', { defaultAgent: AGENT });
    expect((await errorOf(s.as(a.key).submitTask({ prompt: 'x', owner: { type: 'USER', id: b.id } }))).status).toBe(403);
    expect((await errorOf(s.as(a.key).submitTask({ prompt: 'x', owner: { type: 'TEAM', id: team.id } }))).status).toBe(403);
    expect((await errorOf(s.as(s.server.adminKey).submitTask({ prompt: 'x' }))).code).toBe('owner_required');
  });
});

describe('default agent configuration', () => {
  it('gives a team task the team default, refuses a team without one, and runs a user task with none', async () => {
    const s = await setUp();
    const user = await s.createUser('u');
    const withDefault = await s.createTeam('with', { members: [user.id], defaultAgent: { model_id: 'team-default-model' } });
    const without = await s.createTeam('without', { members: [user.id] });
    const client = s.as(user.key);

    const task = await client.submitTask({ prompt: 'x', owner: { type: 'TEAM', id: withDefault.id } });
    expect(task.agent_config).toEqual({ model_id: 'team-default-model' });
    const fleet = await probe(withDefault.key, 'fleet');
    await until(() => fleet.received(task.id), 5_000, 'assignment');
    expect(fleet.assignments[0]!.task.agent_config_snapshot).toEqual({ model_id: 'team-default-model' });

    const refused = await errorOf(client.submitTask({ prompt: 'x', owner: { type: 'TEAM', id: without.id } }));
    expect(refused.status).toBe(404);
    expect(refused.code).toBe('no_default_agent');
    expect(refused.message).toContain(`PUT /api/v1/teams/${without.id}/default-agent`);

    const explicit = await client.submitTask({ prompt: 'x', owner: { type: 'TEAM', id: without.id }, agent_config: { model_id: 'mine' } });
    expect(explicit.agent_config).toEqual({ model_id: 'mine' });
    const userTask = await client.submitTask({ prompt: 'x' });
    expect(userTask.agent_config).toBeNull();
  });
});

describe('bad input', () => {
  it('answers every bad request with JSON carrying a stable code and a sentence', async () => {
    const s = await setUp();
    const user = await s.createUser('u');
    const post = (path: string, body: string, key = user.key) =>
      fetch(`${s.server.httpUrl}${path}`, { method: 'POST', headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, body });
    const check = async (response: Response, status: number, code: string, text?: RegExp): Promise<void> => {
      expect(response.status).toBe(status);
      const body = (await response.json()) as { error: string; code: string };
      expect(body.code).toBe(code);
      if (text) expect(body.error).toMatch(text);
    };
    await check(await post('/api/v1/tasks', '{not json'), 400, 'invalid_json', /not valid JSON/);
    await check(await post('/api/v1/tasks', JSON.stringify({ prompt: 'x', promt: 'typo' })), 400, 'invalid_request', /unknown field "promt"/);
    await check(await post('/api/v1/tasks', JSON.stringify({ prompt: '' })), 400, 'invalid_request', /prompt: must not be empty/);
    await check(await post('/api/v1/tasks', JSON.stringify({ prompt: ' \n\t ' })), 400, 'invalid_request', /prompt: must not be empty or only whitespace/);
    await check(await post('/api/v1/tasks', JSON.stringify({ prompt: 'x', owner: { type: 'team', id: 1 } })), 400, 'invalid_request', /owner\.type/);
    await check(await post('/api/v1/tasks', JSON.stringify({ prompt: 'x'.repeat(300_000) })), 413, 'body_too_large');
    await check(await post('/api/v1/tasks', '{}', 'wrong'), 401, 'unauthorized');
    await check(await post('/api/v1/users', JSON.stringify({ name: 'x' })), 403, 'admin_required');
    await check(await fetch(`${s.server.httpUrl}/api/v1/nope`), 404, 'not_found');
    await check(
      await fetch(`${s.server.httpUrl}/api/v1/tasks`, { method: 'DELETE', headers: { Authorization: `Bearer ${user.key}` } }),
      405,
      'method_not_allowed',
    );
    await check(await fetch(`${s.server.httpUrl}/api/v1/tasks?state=bogus`, { headers: { Authorization: `Bearer ${user.key}` } }), 400, 'invalid_state');
  });

  it('ignores malformed worker frames and refuses oversized ones without losing the queue', async () => {
    const s = await setUp();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const worker = await probe(team.key, 'noisy');
    worker.send('task_claimed', { task_id: 42 });
    (worker as unknown as { socket: { send(d: string): void } }).socket.send('not json');
    const task = await s.as(team.key).submitTask({ prompt: 'still works' });
    await until(() => worker.received(task.id), 5_000, 'assignment after bad frames');
    const big = await probe(team.key, 'big');
    const closed = new Promise<number>((resolve) =>
      (big as unknown as { socket: { once(e: string, f: (code: number) => void): void } }).socket.once('close', resolve),
    );
    big.send('task_claimed', { task_id: 'x'.repeat(2 * 1024 * 1024), worker_id: 'big' });
    expect(await closed).toBe(1009);
  });

  it('refuses to listen beyond loopback unless told to', async () => {
    const { startServer } = await import('../../src/server/server.js');
    const { silentLogger } = await import('../../src/log/logger.js');
    await expect(startServer({ stateDir: '/nonexistent-never-created', host: '0.0.0.0', port: 0, log: silentLogger() })).rejects.toThrow(/--allow-remote/);
  });
});
