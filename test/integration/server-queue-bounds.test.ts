// `oz-worker server` keeps the work one request can cause bounded: a cap on each
// principal's queue, assignments sent a few at a time, and a device_id refused at
// submission when no worker could ever take the task. Real server process.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClientError } from '../../src/local/api-client.js';
import { until } from '../support/local-server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';

let s: ServerProcess | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

async function errorOf(promise: Promise<unknown>): Promise<ApiClientError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiClientError) return error;
    throw error;
  }
  throw new Error('expected the request to fail');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('queue bounds', () => {
  it('refuses a submission beyond --max-queued-per-principal with 429 and a reason; others are not affected', async () => {
    s = await startServerProcess({ args: ['--max-queued-per-principal', '3'] });
    const alice = await s.createUser('alice');
    const bob = await s.createUser('bob');
    const client = s.as(alice.key);
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await client.submitTask({ prompt: `task ${i}` }));
    const refused = await errorOf(client.submitTask({ prompt: 'one too many' }));
    expect(refused.status).toBe(429);
    expect(refused.code).toBe('queue_full');
    expect(refused.message).toMatch(/3 tasks waiting.*--max-queued-per-principal/);
    expect((await s.as(bob.key).submitTask({ prompt: "bob's own" })).state).toBe('queued');
    // A slot frees when a waiting task leaves the queue.
    await client.cancelTask(queued[0]!.id);
    expect((await client.submitTask({ prompt: 'fits again' })).state).toBe('queued');
  });

  it('sends a worker of unknown capacity a few assignments at a time, not its whole backlog', async () => {
    s = await startServerProcess();
    const user = await s.createUser('busy');
    const client = s.as(user.key);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await client.submitTask({ prompt: `backlog ${i}` })).id);
    const probe = await s.probe(user.key, 'slow-worker');
    await until(() => probe.assignments.length > 0, 5_000, 'the first assignments');
    // The point is what does not come: no more assignments while none is claimed.
    await sleep(1_500);
    const first = probe.assignments.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(8);
    // Claims make room: the next ones follow, oldest first, each task once.
    for (const assignment of [...probe.assignments]) probe.send('task_claimed', { task_id: assignment.task_id, worker_id: 'slow-worker' });
    await until(() => probe.assignments.length > first, 5_000, 'more assignments after the claims');
    expect(new Set(probe.assignments.map((a) => a.task_id)).size).toBe(probe.assignments.length);
    expect(probe.assignments.map((a) => a.task_id)).toEqual(ids.slice(0, probe.assignments.length));
  });
});

describe('database growth', () => {
  it('keeps server.db-wal bounded while tasks are submitted (every write leaves checkpoints possible)', async () => {
    s = await startServerProcess();
    const user = await s.createUser('writer');
    const client = s.as(user.key);
    const prompt = 'x'.repeat(99_000);
    for (let i = 0; i < 150; i++) await client.submitTask({ prompt });
    // 150 tasks of 99 KB is ~15 MB of writes; SQLite checkpoints the WAL every ~4 MB unless a statement holds a snapshot.
    const wal = statSync(join(s.stateDir, 'server.db-wal')).size;
    expect(wal).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('device_id at submission', () => {
  it("refuses a device that is not the owner's, or not pinned for the team, alike for devices that do not exist", async () => {
    s = await startServerProcess();
    const alice = await s.createUser('alice');
    const bob = await s.createUser('bob');
    const team = await s.createTeam('eng', { members: [alice.id, bob.id], defaultAgent: { model_id: 'm' } });
    await s.admin.request('POST', '/api/v1/devices', { user_id: alice.id, name: 'laptop', id: 'alices-laptop' });
    await s.admin.request('POST', '/api/v1/devices', { user_id: bob.id, name: 'laptop', id: 'bobs-laptop' });
    await s.admin.request('POST', '/api/v1/devices/alices-laptop/pins', { team_id: team.id });
    const client = s.as(alice.key);

    const othersDevice = await errorOf(client.submitTask({ prompt: 'x', device_id: 'bobs-laptop' }));
    const missingDevice = await errorOf(client.submitTask({ prompt: 'x', device_id: 'no-such-device' }));
    expect(othersDevice).toMatchObject({ status: 400, code: 'device_not_allowed' });
    expect(othersDevice.message).toMatch(/device bobs-laptop is not one of USER \d+'s devices/);
    expect(missingDevice.code).toBe(othersDevice.code);
    expect(missingDevice.message).toBe(othersDevice.message.replace('bobs-laptop', 'no-such-device'));

    const unpinned = await errorOf(client.submitTask({ prompt: 'x', owner: { type: 'TEAM', id: team.id }, device_id: 'bobs-laptop' }));
    expect(unpinned).toMatchObject({ status: 400, code: 'device_not_allowed' });
    expect(unpinned.message).toMatch(new RegExp(`device bobs-laptop has no active pin for team ${team.id}`));
    expect((await errorOf(client.submitTask({ prompt: 'x', owner: { type: 'TEAM', id: team.id }, device_id: 'nope' }))).message).toBe(
      unpinned.message.replace('bobs-laptop', 'nope'),
    );

    expect((await client.submitTask({ prompt: 'x', device_id: 'alices-laptop' })).state).toBe('queued');
    expect((await client.submitTask({ prompt: 'x', owner: { type: 'TEAM', id: team.id }, device_id: 'alices-laptop' })).state).toBe('queued');
  });
});
