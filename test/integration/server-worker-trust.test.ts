// `oz-worker server` against workers that are not who they say, report on work
// that is not theirs, lose their key, or come back without their task: real
// server process, real workers and bare sockets, loopback only.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProbeWorker, until } from '../support/local-server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { REPO_ROOT } from '../support/worker-process.js';

let s: ServerProcess | undefined;
let relay: TcpRelay | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
  await relay?.close();
  relay = undefined;
});

const AGENT = { model_id: 'claude-test' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type WorkerJson = { worker_id: string; identity: Record<string, unknown>; version: string | null };

async function workers(server: ServerProcess): Promise<WorkerJson[]> {
  return (await server.admin.request<{ workers: WorkerJson[] }>('GET', '/api/v1/workers')).workers;
}

describe('a worker id belongs to one user or team', () => {
  it("refuses another principal's connection under a worker id in use, keeps the first, and keeps refusing once it left", async () => {
    s = await startServerProcess();
    const alice = await s.createUser('alice');
    const bob = await s.createUser('bob');
    const client = s.as(alice.key);
    const worker = s.startWorker(alice.key, { workerId: 'shared-id', args: ['-e', 'FAKE_OZ_SLEEP_MS=2500'] });
    const task = await client.submitTask({ prompt: "alice's work" });
    await s.waitForTask(client, task.id, ['running']);

    const refused = await ProbeWorker.refusal(s.webSocketUrl, bob.key, 'shared-id');
    expect(refused?.status).toBe(409);
    expect(JSON.parse(refused!.body)).toMatchObject({
      code: 'worker_id_taken',
      error: expect.stringMatching(/worker_id "shared-id" belongs to another user or team.*--worker-id/),
    });
    expect(await workers(s)).toEqual([expect.objectContaining({ worker_id: 'shared-id', identity: { kind: 'user', userId: alice.id } })]);

    const done = await s.waitForTask(client, task.id, ['completed', 'failed', 'lost'], 20_000);
    expect(done).toMatchObject({ state: 'completed', worker_id: 'shared-id' });
    expect(worker.output).not.toMatch(/replaced by a newer connection/);

    // The id stays alice's while her worker is away: nobody else can sit on it.
    await worker.stop();
    await until(async () => (await workers(s!)).length === 0, 5_000, 'the worker to leave');
    expect((await ProbeWorker.refusal(s.webSocketUrl, bob.key, 'shared-id'))?.status).toBe(409);
  });

  it('lets the same principal reconnect under its id: the new connection replaces the old one', async () => {
    s = await startServerProcess();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const second = await s.as(s.adminKey).request<{ key: string }>('POST', '/api/v1/keys', { team_id: team.id });
    const first = await s.probe(team.key, 'fleet-1');
    // Another key of the same team: the same principal, a restart with a rotated key.
    await s.probe(second.key, 'fleet-1');
    expect(await first.closed).toEqual({ code: 4000, reason: 'replaced by a newer connection with the same worker_id' });
  });
});

describe('a worker reports only on tasks it was assigned', () => {
  it("ignores another user's claim and completion of a queued task; the owner's worker runs it", async () => {
    s = await startServerProcess();
    const alice = await s.createUser('alice');
    const bob = await s.createUser('bob');
    const client = s.as(alice.key);
    const task = await client.submitTask({ prompt: 'nobody has picked this up yet' });
    const intruder = await s.probe(bob.key, 'bobs-worker');
    intruder.send('task_claimed', { task_id: task.id, worker_id: 'bobs-worker' });
    intruder.send('task_completed', { task_id: task.id, message: 'Task completed successfully' });
    await until(async () => s!.logged(/Ignored task_completed/) || (await client.task(task.id)).state !== 'queued', 5_000, 'the report to be handled');
    expect(await client.task(task.id)).toMatchObject({ state: 'queued', worker_id: null, attempts: 0 });
    expect(s.logged(/Ignored a claim for a task not assigned to this worker/)).toBe(true);

    s.startWorker(alice.key, { workerId: 'alices-worker' });
    const done = await s.waitForTask(client, task.id, ['completed', 'failed'], 20_000);
    expect(done).toMatchObject({ state: 'completed', worker_id: 'alices-worker' });
    expect(intruder.assignments).toEqual([]);
  });

  it("ignores another team's worker reporting on a running task", async () => {
    s = await startServerProcess();
    const eng = await s.createTeam('eng', { defaultAgent: AGENT });
    const ops = await s.createTeam('ops', { defaultAgent: AGENT });
    const client = s.as(eng.key);
    const owner = await s.probe(eng.key, 'eng-fleet');
    const task = await client.submitTask({ prompt: 'eng work' });
    await until(() => owner.received(task.id), 5_000, 'the assignment');
    owner.send('task_claimed', { task_id: task.id, worker_id: 'eng-fleet' });
    await s.waitForTask(client, task.id, ['running']);
    const other = await s.probe(ops.key, 'ops-fleet');
    other.send('task_failed', { task_id: task.id, message: 'hijacked', failure_reason: 'unknown' });
    other.send('task_claimed', { task_id: task.id, worker_id: 'ops-fleet' });
    await until(() => s!.logged(/Ignored task_failed/), 5_000, 'the ignored report');
    expect(await client.task(task.id)).toMatchObject({ state: 'running', worker_id: 'eng-fleet' });
    owner.send('task_completed', { task_id: task.id, message: 'Task completed successfully' });
    expect(await s.waitForTask(client, task.id, ['completed', 'failed'])).toMatchObject({ state: 'completed', worker_id: 'eng-fleet' });
  });
});

describe('a status names the execution it ends', () => {
  it('ignores a final status for another execution; records the one it ends', async () => {
    s = await startServerProcess();
    const eng = await s.createTeam('eng', { defaultAgent: AGENT });
    const client = s.as(eng.key);
    const worker = await s.probe(eng.key, 'eng-fleet');
    const ran = async (prompt: string): Promise<{ id: string; execution: string }> => {
      const task = await client.submitTask({ prompt });
      await until(() => worker.received(task.id), 5_000, 'the assignment');
      worker.send('task_claimed', { task_id: task.id, worker_id: 'eng-fleet' });
      await s!.waitForTask(client, task.id, ['running']);
      return { id: task.id, execution: worker.assignments.find((a) => a.task_id === task.id)!.execution_id };
    };

    // An earlier execution's report (e.g. held across a reconnect) does not end the current one.
    const stale = await ran('one execution at a time');
    worker.send('task_completed', { task_id: stale.id, execution_id: 'an-earlier-execution', message: 'Task completed successfully' });
    await until(() => s!.logged(/Ignored task_completed for execution an-earlier-execution/), 5_000, 'the ignored report');
    expect(await client.task(stale.id)).toMatchObject({ state: 'running', reported_execution_id: null });
    worker.send('task_failed', {
      task_id: stale.id,
      execution_id: stale.execution,
      message: 'Failed to execute task: boom',
      failure_reason: 'agent_invocation',
      exit_code: 3,
    });
    expect(await s.waitForTask(client, stale.id, ['failed', 'completed'])).toMatchObject({
      state: 'failed',
      exit_code: 3,
      execution_id: stale.execution,
      reported_execution_id: stale.execution,
    });

    const cancelled = await ran('cancelled');
    worker.send('task_completed', {
      task_id: cancelled.id,
      execution_id: cancelled.execution,
      message: 'Task cancelled by user request.',
      task_state: 'CANCELLED',
    });
    expect(await s.waitForTask(client, cancelled.id, ['cancelled', 'completed'])).toMatchObject({
      state: 'cancelled',
      reported_execution_id: cancelled.execution,
    });

    // A worker from before the field names none: its report counts for the current execution.
    const older = await ran('from an older worker');
    worker.send('task_completed', { task_id: older.id, message: 'Task completed successfully' });
    expect(await s.waitForTask(client, older.id, ['completed', 'failed'])).toMatchObject({ state: 'completed', reported_execution_id: null });
  });

  it("records each connection's announced version; a real worker announces its own", async () => {
    s = await startServerProcess();
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    s.startWorker(team.key, { workerId: 'real' });
    await s.probe(team.key, 'release', undefined, { 'X-Warp-Worker-Version': 'v2026-08-04-15-14-28' });
    await s.probe(team.key, 'silent');
    // A byte that is not UTF-8 (Node itself refuses to send control characters).
    await s.probe(team.key, 'garbled', undefined, { 'X-Warp-Worker-Version': 'v1-\u00ff' });
    await until(async () => (await workers(s!)).length === 4, 10_000, 'four connections');
    const versions = Object.fromEntries((await workers(s)).map((w) => [w.worker_id, w.version]));
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(versions).toEqual({ real: version, release: 'v2026-08-04-15-14-28', silent: null, garbled: null });
    expect(s.logged(/Ignored an invalid X-Warp-Worker-Version header/)).toBe(true);
  });
});

describe('revoking a key', () => {
  it("closes the key's worker connections at once; the worker gets nothing more", async () => {
    s = await startServerProcess();
    const carol = await s.createUser('carol');
    const spare = await s.admin.request<{ key: string }>('POST', '/api/v1/keys', { user_id: carol.id });
    const worker = s.startWorker(carol.key, { workerId: 'carols-worker' });
    const socket = await s.probe(carol.key, 'carols-probe');
    await until(async () => (await workers(s!)).length === 2, 10_000, 'both connections');

    await s.admin.request('DELETE', `/api/v1/keys/${carol.keyId}`);
    expect(await socket.closed).toEqual({ code: 4001, reason: 'the API key of this connection was revoked' });
    await worker.waitForLog((line) => line.msg.includes('Connection to dispatch server closed') && line.code === 4001, 5_000);
    await until(async () => (await workers(s!)).length === 0, 2_000, 'the server to drop both connections');
    // It reconnects, is refused (401), and never sees new work.
    await worker.waitForLog((line) => /upgrade rejected with HTTP 401/.test(line.msg), 10_000);
    const task = await s.as(spare.key).submitTask({ prompt: 'after the revocation' });
    // Nothing may happen: the task stays queued, not assigned to the refused worker.
    await sleep(1_000);
    expect(await s.as(spare.key).task(task.id)).toMatchObject({ state: 'queued', attempts: 0 });
  });
});

describe('removing a user or team', () => {
  it('closes its worker connections and frees its worker ids for nobody else to inherit', async () => {
    s = await startServerProcess();
    const dave = await s.createUser('dave');
    const socket = await s.probe(dave.key, 'daves-worker');
    await s.admin.request('DELETE', `/api/v1/users/${dave.id}`);
    expect(await socket.closed).toEqual({ code: 4001, reason: 'the user or team of this connection was removed' });
    // A user created next may get the same id; it does not get dave's worker id with it.
    const erin = await s.createUser('erin');
    expect(erin.id).toBe(dave.id);
    const other = await s.createUser('other');
    await (await s.probe(other.key, 'daves-worker')).close();
    expect((await ProbeWorker.refusal(s.webSocketUrl, erin.key, 'daves-worker'))?.status).toBe(409);
  });
});

describe('a worker that comes back without its task', () => {
  it('marks the task lost when the reconnected worker does not confirm it within --lost-timeout', async () => {
    s = await startServerProcess({ args: ['--lost-timeout', '2s'] });
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const client = s.as(team.key);
    const before = await s.probe(team.key, 'flaky');
    const task = await client.submitTask({ prompt: 'long work' });
    await until(() => before.received(task.id), 5_000, 'the assignment');
    before.send('task_claimed', { task_id: task.id, worker_id: 'flaky' });
    await s.waitForTask(client, task.id, ['running']);
    await before.close();
    // Restarted without its journal: it connects under the same id and says nothing about the task.
    const after = await s.probe(team.key, 'flaky');
    await until(() => after.received(task.id), 5_000, 'the confirmation request (the assignment again)');
    expect(after.assignments[0]!.execution_id).toBe(before.assignments[0]!.execution_id);
    const lost = await s.waitForTask(client, task.id, ['lost', 'completed', 'failed'], 6_000);
    expect(lost.state).toBe('lost');
    expect(lost.message).toMatch(/reconnected but did not confirm the task within 2 s/);
  });

  it('keeps a task whose real worker reconnects after a network blip and confirms it, even past --lost-timeout', async () => {
    s = await startServerProcess({ args: ['--lost-timeout', '3s'] });
    relay = await startTcpRelay(Number(new URL(s.httpUrl).port));
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const client = s.as(team.key);
    const worker = s.startWorker(team.key, {
      workerId: 'steady',
      args: ['-e', 'FAKE_OZ_SLEEP_MS=9000'],
      webSocketUrl: s.webSocketUrl.replace(/:\d+\//, `:${relay.port}/`),
    });
    const task = await client.submitTask({ prompt: 'runs through a blip' });
    await s.waitForTask(client, task.id, ['running']);
    relay.dropConnections();
    await worker.waitForLog((line) => line.msg.includes('confirming the claim again'), 10_000);
    // Past the lost timeout: the confirmation, not luck, keeps the task running.
    await sleep(3_500);
    expect((await client.task(task.id)).state).toBe('running');
    const done = await s.waitForTask(client, task.id, ['completed', 'failed', 'lost'], 20_000);
    expect(done).toMatchObject({ state: 'completed', worker_id: 'steady' });
  });

  it('takes the outcome a worker held while away, without making it run the task again', async () => {
    s = await startServerProcess({ args: ['--lost-timeout', '4s'] });
    relay = await startTcpRelay(Number(new URL(s.httpUrl).port));
    const team = await s.createTeam('eng', { defaultAgent: AGENT });
    const client = s.as(team.key);
    const worker = s.startWorker(team.key, {
      workerId: 'away',
      args: ['-e', 'FAKE_OZ_SLEEP_MS=1000'],
      webSocketUrl: s.webSocketUrl.replace(/:\d+\//, `:${relay.port}/`),
    });
    const task = await client.submitTask({ prompt: 'finishes while the network is down' });
    await s.waitForTask(client, task.id, ['running']);
    relay.setBlocked(true);
    relay.dropConnections();
    await worker.waitForLog((line) => line.msg.includes('Task completed'), 10_000);
    relay.setBlocked(false);
    const done = await s.waitForTask(client, task.id, ['completed', 'failed', 'lost'], 15_000);
    expect(done).toMatchObject({ state: 'completed', worker_id: 'away' });
    // Nothing may happen: no second assignment arrives after the outcome was taken.
    await sleep(2_000);
    expect(worker.logs.filter((line) => line.msg === 'Received task assignment')).toHaveLength(1);
  });
});
