// Task logs through the local dispatch server: its assignments carry a workload
// token and point `telemetry_collection` at the server, which answers the
// identity call (only for the task's own key, workload token and id) and takes
// the OTLP exports (only with that task's identity token), keeping them per
// task for `oz-worker task logs --exported`.
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { createHttpPoster } from '../../src/observability/http-post.js';
import { TaskLogExports } from '../../src/observability/task-logs.js';
import { IDENTITY_QUERY, identityRequestBody } from '../../src/observability/task-logs/identity-token.js';
import type { TaskAssignment } from '../../src/protocol/messages.js';
import { runCli } from '../support/cli.js';
import { ProbeWorker, startLocalServer, until, type LocalServerHarness } from '../support/local-server.js';

let harness: LocalServerHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const identityCall = (url: string, headers: Record<string, string>, body = identityRequestBody()) =>
  fetch(`${url}/graphql/v2`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body });

describe('task logs through the local server', () => {
  it('exports a task’s output to the server, which keeps it for task logs --exported (and leaves it out of task watch)', async () => {
    harness = await startLocalServer();
    const user = await harness.createUser('ana');
    harness.startWorker(user.key);
    const client = harness.as(user.key);
    const task = await client.submitTask({ prompt: 'say something', agent_config: {} });
    await harness.waitForTask(client, task.id, ['completed'], 30_000);
    const { events } = await client.events(task.id, 0, 0);
    const exported = events.filter((e) => e.kind === 'log').map((e) => e.detail);
    expect(exported[0]).toMatch(/^\[agent\.stdout\] fake-oz: started with agent run /);
    // The task's own key never reaches a record.
    const frame = events.map((e) => e.detail).join('\n');
    expect(frame).not.toMatch(/ozl_/);

    const url = harness.server.httpUrl;
    const logs = await runCli(['task', 'logs', task.id, '--exported', '--server', url, '--api-key', user.key]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/^\[agent\.stdout\] fake-oz: started with agent run /);
    const plain = await runCli(['task', 'logs', task.id, '--server', url, '--api-key', user.key]);
    expect(plain.stdout).toMatch(/^fake-oz: started with agent run /);
    const watch = await runCli(['task', 'watch', task.id, '--server', url, '--api-key', user.key]);
    expect(watch.stdout).not.toContain('[agent.stdout]');
    expect(watch.stdout).toMatch(/task completed/);
    // Someone else cannot read them.
    const other = await harness.createUser('bo');
    const denied = await runCli(['task', 'logs', task.id, '--exported', '--server', url, '--api-key', other.key]);
    expect(denied.code).not.toBe(0);
  }, 60_000);

  it('gives each assignment a workload token and itself as the collector; issues an identity token only to the task’s own credentials', async () => {
    harness = await startLocalServer();
    const user = await harness.createUser('cy');
    const probe = await ProbeWorker.connect(harness.server.webSocketUrl, user.key, 'probe-1');
    try {
      const client = harness.as(user.key);
      const first = await client.submitTask({ prompt: 'one', agent_config: {} });
      const second = await client.submitTask({ prompt: 'two', agent_config: {} });
      const a = await until(() => probe.assignments.find((x) => x.task_id === first.id), 10_000, 'the first assignment');
      const b = await until(() => probe.assignments.find((x) => x.task_id === second.id), 10_000, 'the second assignment');
      const url = harness.server.httpUrl;
      const envA = a.env_vars as Record<string, string>;
      const envB = b.env_vars as Record<string, string>;
      expect(envA.WARP_WORKLOAD_TOKEN).toMatch(/^ozw_/);
      expect(envA.WARP_WORKLOAD_TOKEN).not.toBe(envB.WARP_WORKLOAD_TOKEN);
      expect((a as Record<string, unknown>).telemetry_collection).toEqual({ endpoint: `${url}/otlp`, tracing_enabled: false, logging_enabled: true });

      const own = {
        Authorization: `Bearer ${envA.WARP_API_KEY}`,
        'X-Warp-Cloud-Agent-ID': first.id,
        'X-Warp-Ambient-Workload-Token': envA.WARP_WORKLOAD_TOKEN!,
      };
      const ok = await identityCall(url, own);
      expect(ok.status).toBe(200);
      const issued = (await ok.json()) as { data: { issueTaskIdentityToken: { __typename: string; token: string; expiresAt: string } } };
      expect(issued.data.issueTaskIdentityToken).toMatchObject({ __typename: 'IssueTaskIdentityTokenOutput', token: expect.stringMatching(/^ozi_/) });
      const lifetime = Date.parse(issued.data.issueTaskIdentityToken.expiresAt) - Date.now();
      expect(lifetime).toBeGreaterThan(3 * 3600 * 1000 - 60_000);
      expect(lifetime).toBeLessThanOrEqual(3 * 3600 * 1000);

      for (const [what, headers, status] of [
        ['no key', { ...own, Authorization: '' }, 401],
        ['a user key', { ...own, Authorization: `Bearer ${user.key}` }, 401],
        ['another task’s workload token', { ...own, 'X-Warp-Ambient-Workload-Token': envB.WARP_WORKLOAD_TOKEN! }, 403],
        ['another task’s id', { ...own, 'X-Warp-Cloud-Agent-ID': second.id }, 403],
        ['no workload token', { ...own, 'X-Warp-Ambient-Workload-Token': '' }, 403],
      ] as const) {
        const refused = await identityCall(url, headers);
        expect(refused.status, what).toBe(status);
        expect(await refused.text(), what).not.toContain('ozi_');
      }
      const wrongQuery = await identityCall(url, own, JSON.stringify({ query: 'query { me }', variables: {} }));
      expect(wrongQuery.status).toBe(400);
      expect(IDENTITY_QUERY).toContain('issueTaskIdentityToken');

      // The collector takes records only with an identity token, bounded in size.
      const token = issued.data.issueTaskIdentityToken.token;
      const post = (headers: Record<string, string>, body: Uint8Array | string = new Uint8Array()) =>
        fetch(`${url}/otlp/v1/logs`, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf', ...headers }, body });
      expect((await post({})).status).toBe(401);
      expect((await post({ Authorization: `Bearer ${envA.WARP_API_KEY}` })).status).toBe(401);
      expect((await post({ Authorization: `Bearer ${token.slice(0, -2)}xx` })).status).toBe(401);
      expect((await post({ Authorization: `Bearer ${token}` })).status).toBe(200);
      expect((await post({ Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, '{}')).status).toBe(415);
      expect((await post({ Authorization: `Bearer ${token}` }, new Uint8Array([0xff, 0xff, 0xff]))).status).toBe(400);
      expect((await post({ Authorization: `Bearer ${token}` }, new Uint8Array(4 * 1024 * 1024 + 1))).status).toBe(413);

      // A task's kept records are bounded (1 MiB, then one logs_truncated event), through a real export.
      const poster = createHttpPoster({ env: {} });
      const reporter = (await new TaskLogExports({
        collect: true,
        serverRootUrl: url,
        workerId: 'probe-1',
        backend: 'direct',
        workerApiKey: user.key,
        poster,
      }).open(a as unknown as TaskAssignment, silentLogger()))!;
      const out = reporter.writer('agent.stdout');
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 400; i++) out.write(`${'x'.repeat(990)} ${round}-${i}\n`);
        await reporter.flush();
      }
      await reporter.shutdown();
      poster.close();
      const { events } = await client.events(first.id, 0, 0);
      const kept = events.filter((e) => e.kind === 'log');
      expect(kept.length).toBeGreaterThan(900);
      expect(kept.reduce((sum, e) => sum + Buffer.byteLength(e.detail), 0)).toBeLessThanOrEqual(1024 * 1024);
      expect(events.filter((e) => e.kind === 'logs_truncated')).toHaveLength(1);

      // Identity tokens outlive a restart of the server.
      await harness.restart();
      const after = await fetch(`${harness.server.httpUrl}/otlp/v1/logs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-protobuf', Authorization: `Bearer ${token}` },
        body: new Uint8Array(),
      });
      expect(after.status).toBe(200);
    } finally {
      await probe.close();
    }
  });
});
