// Operators' view of a running worker: the Go worker's metrics on a Prometheus
// endpoint, and /livez and /readyz, scraped from the real worker process.
import { writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { startDirectWorker, type DirectHarness } from '../support/direct-worker.js';
import { assignment } from '../support/fake-dispatch-server.js';
import { until } from '../support/local-server.js';
import { freePort, samples } from '../support/metrics.js';
import { startWorker, tempDir } from '../support/worker-process.js';

let harness: DirectHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function start(): Promise<{ h: DirectHarness; scrape: () => Promise<Map<string, number>>; raw: () => Promise<string>; health: string }> {
  const port = await freePort();
  harness = await startDirectWorker({
    args: ['--health-listen', '127.0.0.1:0', '--max-concurrent-tasks', '3'],
    env: { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port) },
  });
  const h = harness;
  await h.server.waitForConnection();
  const line = await h.worker.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Health endpoints on'));
  const raw = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return { h, raw, scrape: async () => samples(await raw()), health: `http://${line.address as string}` };
}

describe('metrics', () => {
  it('exposes every series at start-up, then counts claims, results, durations and failures', async () => {
    const { h, scrape, raw } = await start();
    const text = await raw();
    expect(text).toContain('otel_scope_name="github.com/warpdotdev/oz-agent-worker"');
    expect(text).not.toContain('oz_worker_task_duration_seconds');
    await until(async () => (await scrape()).get('oz_worker_connected') === 1, 5_000, 'connected = 1');
    const initial = await scrape();
    expect(initial.get('oz_worker_tasks_active')).toBe(0);
    expect(initial.get('oz_worker_tasks_max_concurrent')).toBe(3);
    expect(initial.get('oz_worker_tasks_claimed_total')).toBe(0);
    expect(initial.get('oz_worker_tasks_rejected_total{reason="at_capacity"}')).toBe(0);
    for (const result of ['succeeded', 'failed', 'cancelled', 'dispatched']) expect(initial.get(`oz_worker_tasks_completed_total{result="${result}"}`)).toBe(0);
    expect(initial.get('oz_worker_task_failures_total{phase="backend",reason="image_pull"}')).toBe(0);
    expect(initial.get('oz_worker_task_failures_total{phase="cleanup",reason="cleanup"}')).toBe(0);
    expect([...initial.keys()].filter((k) => k.startsWith('oz_worker_task_failures_total'))).toHaveLength(3 * 30);
    expect(initial.get('oz_worker_task_failures_total{phase="backend",reason="pod_preempted"}')).toBe(0);
    expect(initial.get('oz_worker_websocket_reconnects_total{reason="dial_failed"}')).toBe(0);
    expect([...initial.keys()].find((k) => k.startsWith('oz_worker_info'))).toMatch(/version="[^"]+".*backend="direct".*worker_id="it-worker"/);

    h.server.assign(assignment('m1', { env_vars: { FAKE_OZ_SLEEP_MS: '1500' } }));
    await h.server.waitForMessage('task_claimed', 'm1');
    const during = await scrape();
    expect(during.get('oz_worker_tasks_active')).toBe(1);
    expect(during.get('oz_worker_tasks_claimed_total')).toBe(1);
    await h.server.waitForMessage('task_completed', 'm1');
    h.server.assign(assignment('m2', { env_vars: { FAKE_OZ_EXIT: '3' } }));
    await h.server.waitForMessage('task_failed', 'm2');
    const after = await until(
      async () => {
        const now = await scrape();
        return now.get('oz_worker_tasks_completed_total{result="failed"}') === 1 ? now : undefined;
      },
      5_000,
      'the failed task to be counted',
    );
    expect(after.get('oz_worker_tasks_active')).toBe(0);
    expect(after.get('oz_worker_tasks_completed_total{result="succeeded"}')).toBe(1);
    expect(after.get('oz_worker_task_duration_seconds_count{result="succeeded"}')).toBe(1);
    expect(after.get('oz_worker_task_duration_seconds_sum{result="succeeded"}')).toBeGreaterThan(1);
    expect(after.get('oz_worker_task_failures_total{phase="backend",reason="agent_invocation"}')).toBe(1);
  });
});

describe('health', () => {
  it('is live always, ready only while connected and not draining', async () => {
    const { h, health } = await start();
    expect((await fetch(`${health}/livez`)).status).toBe(200);
    await until(async () => (await fetch(`${health}/readyz`)).status === 200, 5_000, 'ready');

    h.server.refuseWith = 503;
    h.server.dropConnections();
    const notConnected = await until(
      async () => {
        const response = await fetch(`${health}/readyz`);
        return response.status === 503 ? ((await response.json()) as { reason: string }) : undefined;
      },
      5_000,
      'not ready',
    );
    expect(notConnected.reason).toBe('not connected to the dispatch server');
    expect((await fetch(`${health}/livez`)).status).toBe(200);
    h.server.refuseWith = undefined;
    await until(async () => (await fetch(`${health}/readyz`)).status === 200, 10_000, 'ready again');

    h.server.assign(assignment('d1', { env_vars: { FAKE_OZ_SLEEP_MS: '60000', FAKE_OZ_IGNORE_TERM: '1' } }));
    const agent = await h.waitForRecord('d1');
    // The agent ignores SIGTERM; do not leave it behind when the harness kills the worker.
    onTestFinished(() => {
      try {
        process.kill(-agent.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    h.worker.signal('SIGTERM');
    const draining = await until(
      async () => {
        const response = await fetch(`${health}/readyz`).catch(() => undefined);
        return response?.status === 503 ? ((await response.json()) as { reason: string }) : undefined;
      },
      5_000,
      'draining',
    );
    expect(draining.reason).toMatch(/shutting down/);
  });
});

describe('health while the backend starts', () => {
  it('answers /livez at once and keeps /readyz at 503 until the backend is up', async () => {
    // A Kubernetes API server that accepts connections and never answers: the backend's start-up waits on it.
    const held: Socket[] = [];
    const api = createServer((socket) => void held.push(socket));
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    const dir = tempDir('health-start');
    const kubeconfig = join(dir.path, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:${(api.address() as { port: number }).port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n`,
    );
    const configFile = join(dir.path, 'config.yaml');
    writeFileSync(configFile, `worker_id: starting-worker\nbackend:\n  kubernetes:\n    kubeconfig: ${kubeconfig}\n`);
    const worker = startWorker({
      args: ['--config-file', configFile, '--web-socket-url', 'ws://127.0.0.1:9/ws', '--health-listen', '127.0.0.1:0'],
      env: { WARP_API_KEY: 'wk_test_key_0123456789' },
    });
    try {
      const line = await worker.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Health endpoints on'));
      const health = `http://${line.address as string}`;
      await until(() => held.length > 0, 10_000, 'the backend to call the Kubernetes API');
      expect((await fetch(`${health}/livez`)).status).toBe(200);
      const ready = await fetch(`${health}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { reason: string }).reason).toMatch(/\S/);
      expect(worker.logs.some((l) => l.msg === 'Starting oz-worker')).toBe(false);
    } finally {
      await worker.stop();
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => api.close(resolve));
      dir.cleanup();
    }
  });
});
