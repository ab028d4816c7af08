// The local server's run client-events endpoint: who may post (the task's own
// key, or its owner), what it accepts, where the events go (the task's
// history, read by `task watch`), and a real worker reporting through it end
// to end.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClientError } from '../../src/local/api-client.js';
import { clientEventBody } from '../../src/protocol/client-events.js';
import { MAX_CLIENT_EVENTS_PER_TASK } from '../../src/server/client-events.js';
import { FakeDockerEngine } from '../support/fake-docker-engine.js';
import { ProbeWorker, startLocalServer, until, type LocalServerHarness } from '../support/local-server.js';
import { runCli } from '../support/cli.js';
import { startWorker, tempDir } from '../support/worker-process.js';

let h: LocalServerHarness | undefined;
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await h?.close();
  h = undefined;
});

const START = new Date('2026-08-12T15:35:00Z');
const event = (name = 'setup_worker_image_pull', latencyMs = 1_234, isError = false) =>
  clientEventBody(name, START, new Date(START.getTime() + latencyMs), isError, randomUUID());

/** POSTs to the task's client-events path as the Go worker does; the status and JSON answer. */
async function post(taskId: string, key: string | undefined, body: unknown, raw?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await request(`${h!.server.httpUrl}/api/v1/agent/runs/${encodeURIComponent(taskId)}/client-events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Warp-Cloud-Agent-ID': taskId, ...(key ? { Authorization: `Bearer ${key}` } : {}) },
    body: raw ?? JSON.stringify(body),
  });
  return { status: response.statusCode, json: (await response.body.json()) as Record<string, unknown> };
}

/** A user, a probe worker of theirs, and `count` tasks it was assigned (with their per-task keys). */
async function tasksOf(name: string, count: number) {
  const s = h!;
  const user = await s.createUser(name);
  const probe = await ProbeWorker.connect(s.server.webSocketUrl, user.key, `${name}-worker`);
  cleanups.push(() => probe.close());
  const client = s.as(user.key);
  const tasks = [];
  for (let i = 0; i < count; i++) {
    const task = await client.submitTask({ prompt: `task ${i}` });
    await until(() => probe.received(task.id), 5_000, 'the assignment');
    const key = probe.assignments.find((a) => a.task_id === task.id)!.env_vars.WARP_API_KEY!;
    probe.send('task_claimed', { task_id: task.id, worker_id: `${name}-worker` });
    tasks.push({ id: task.id, key });
  }
  return { user, probe, client, tasks };
}

describe('POST /api/v1/agent/runs/{task_id}/client-events', () => {
  it("keeps an event the task's own key posts in the task's history, once per event_uuid, and wakes a waiting watch", async () => {
    h = await startLocalServer();
    const { client, tasks } = await tasksOf('alice', 1);
    const [task] = tasks;
    const { events: before } = await client.events(task!.id, 0, 0);
    const waiting = client.events(task!.id, before.at(-1)!.seq, 10);
    const body = event('setup_worker_image_pull', 1_234);
    expect(await post(task!.id, task!.key, body)).toEqual({ status: 200, json: { stored: true } });
    const woke = await waiting;
    expect(woke.events).toEqual([{ seq: expect.any(Number), at: expect.any(String), kind: 'setup', detail: 'image pull took 1.2 s', data: body }]);
    // The same event again (same uuid) is not kept twice.
    expect(await post(task!.id, task!.key, body)).toEqual({ status: 200, json: { stored: false } });
    expect((await client.events(task!.id, 0, 0)).events.filter((e) => e.kind === 'setup')).toHaveLength(1);
  });

  it('takes the task owner’s key too; refuses another task’s key, another user’s and the admin key (403), and unknown keys (401)', async () => {
    h = await startLocalServer();
    const { user, tasks } = await tasksOf('alice', 2);
    const [first, second] = tasks;
    const bob = await h.createUser('bob');
    const unknownTask = 'no-such-task';
    expect((await post(first!.id, user.key, event())).status).toBe(200);
    const refusals = [
      ["another task's key (same owner)", first!.id, second!.key, 403],
      ["another user's key", first!.id, bob.key, 403],
      ['the admin key', first!.id, h.server.adminKey, 403],
      ['a task that does not exist', unknownTask, user.key, 403],
      ['an unknown key', first!.id, 'ozl_not-a-key', 401],
      ['no key', first!.id, undefined, 401],
    ] as const;
    for (const [, taskId, key, status] of refusals) {
      const answer = await post(taskId, key, event());
      expect(answer.status).toBe(status);
      expect(answer.json).toHaveProperty('error');
    }
    expect((await h.as(user.key).events(first!.id, 0, 0)).events.filter((e) => e.kind === 'setup')).toHaveLength(1);
  });

  it('refuses a body that is not an event (400), a large one (413), and more events than a task keeps (429)', async () => {
    h = await startLocalServer();
    const { tasks } = await tasksOf('alice', 1);
    const [task] = tasks;
    const invalid = await post(task!.id, task!.key, { ...event(), payload: { ...event().payload, latency_ms: 'slow' } });
    expect(invalid).toMatchObject({ status: 400, json: { code: 'invalid_request' } });
    expect(String(invalid.json.error)).toMatch(/payload\.latency_ms/);
    expect(await post(task!.id, task!.key, undefined, '{"event_uuid":')).toMatchObject({ status: 400, json: { code: 'invalid_json' } });
    expect(await post(task!.id, task!.key, undefined, '')).toMatchObject({ status: 400 });
    const large = await post(task!.id, task!.key, { ...event(), padding: 'x'.repeat(32 * 1024) });
    expect(large).toMatchObject({ status: 413, json: { code: 'body_too_large' } });
    for (let i = 0; i < MAX_CLIENT_EVENTS_PER_TASK; i++) expect((await post(task!.id, task!.key, event())).status).toBe(200);
    expect(await post(task!.id, task!.key, event())).toMatchObject({ status: 429, json: { code: 'too_many_events' } });
  });

  it('takes the last events of a task that just ended from its key (posted in the background), though the key opens nothing else', async () => {
    h = await startLocalServer();
    const { probe, client, tasks } = await tasksOf('alice', 1);
    const [task] = tasks;
    probe.send('task_completed', { task_id: task!.id, message: 'Task completed successfully' });
    await h.waitForTask(client, task!.id, ['completed']);
    expect(await post(task!.id, task!.key, event('setup_worker_container_start', 400))).toEqual({ status: 200, json: { stored: true } });
    const whoami = await h
      .as(task!.key)
      .request('GET', '/api/v1/whoami')
      .catch((error: ApiClientError) => error);
    expect(whoami).toBeInstanceOf(ApiClientError);
    expect((whoami as ApiClientError).status).toBe(401);
  });
});

describe('a worker reporting to the local server, end to end', () => {
  it('a Docker task (fake engine): its setup phases reach the server with its key and `task watch` shows them with their durations', async () => {
    h = await startLocalServer();
    const engine = await FakeDockerEngine.start();
    cleanups.push(() => engine.close());
    const dir = tempDir('client-events-e2e');
    cleanups.push(dir.cleanup);
    const user = await h.createUser('dora');
    const config = join(dir.path, 'config.yaml');
    writeFileSync(config, ['worker_id: dora-docker', 'backend:', '  docker: {}'].join('\n'));
    const worker = startWorker({
      args: ['--config-file', config, '--web-socket-url', h.server.webSocketUrl, '--server-root-url', h.server.httpUrl],
      env: { WARP_API_KEY: user.key, DOCKER_HOST: engine.dockerHost, HOME: dir.path },
    });
    cleanups.push(() => worker.stop());
    const client = h.as(user.key);
    const task = await client.submitTask({ prompt: 'run in a container' });
    await h.waitForTask(client, task.id, ['completed', 'failed'], 30_000);
    const setup = await until(
      async () => {
        const found = (await client.events(task.id, 0, 0)).events.filter((e) => e.kind === 'setup');
        return found.length >= 2 && found;
      },
      15_000,
      'the setup events',
    );
    expect(setup.map((e) => (e.data as { event_name: string }).event_name).sort()).toEqual(['setup_worker_container_start', 'setup_worker_image_pull']);
    expect(worker.logs.filter((l) => /setup event/i.test(String(l.msg)))).toEqual([]);

    const watched = await runCli(['task', 'watch', task.id, '--server', h.server.httpUrl, '--api-key', user.key]);
    expect(watched.code, watched.stderr).toBe(0);
    const lines = watched.stdout.split('\n').filter((line) => /^\d\d:\d\d:\d\d {2}setup /.test(line));
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/^\d\d:\d\d:\d\d {2}setup {16}(image pull|container start) +\d+ ms$/);
    // The durations stand in one column.
    expect(new Set(lines.map((line) => line.search(/\d+ ms$/))).size).toBe(1);
  }, 60_000);
});
