// The metrics pipeline in-process, against the Go worker's metrics_test.go
// expectations: which exporter the OTEL_* variables select, the series primed
// at start-up, how each hook moves its series, and the resource attributes a
// Prometheus scrape shows (target_info).
import { createServer as createHttpServer } from 'node:http';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { chooseExporter, startMetrics, type RunningMetrics } from '../../src/observability/metrics.js';
import { FAILURE_PHASES, FAILURE_REASONS } from '../../src/task/failure.js';
import { freePort, samples } from '../support/metrics.js';

const silent = pino({ level: 'silent' });

let running: RunningMetrics | undefined;
afterEach(async () => {
  await running?.shutdown();
  running = undefined;
});

async function prometheus(
  options: { backendLabel?: string; env?: Record<string, string> } = {},
): Promise<{ metrics: RunningMetrics['metrics']; scrape: () => Promise<string> }> {
  const port = await freePort();
  running = await startMetrics({
    env: { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(port), ...options.env },
    version: 'v1.2.3',
    workerId: 'alpha',
    backendLabel: options.backendLabel ?? 'kubernetes',
    log: silent,
  });
  return { metrics: running.metrics, scrape: async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text() };
}

describe('chooseExporter (OTEL_METRICS_EXPORTER and friends)', () => {
  it.each<[string, Record<string, string>, unknown]>([
    ['none turns metrics off', { OTEL_METRICS_EXPORTER: 'none' }, { kind: 'none' }],
    ['unset without an OTLP endpoint exports nothing', {}, { kind: 'none' }],
    ['unset with an OTLP endpoint pushes OTLP', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, { kind: 'otlp' }],
    ['unset with a metrics-only OTLP endpoint pushes OTLP', { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://collector:4318/v1/metrics' }, { kind: 'otlp' }],
    ['prometheus defaults to localhost:9464', { OTEL_METRICS_EXPORTER: 'prometheus' }, { kind: 'prometheus', host: 'localhost', port: 9464 }],
    [
      'prometheus honours host and port',
      { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '0.0.0.0', OTEL_EXPORTER_PROMETHEUS_PORT: '9100' },
      { kind: 'prometheus', host: '0.0.0.0', port: 9100 },
    ],
    ['otlp', { OTEL_METRICS_EXPORTER: 'otlp' }, { kind: 'otlp' }],
    ['console', { OTEL_METRICS_EXPORTER: 'console' }, { kind: 'console' }],
  ])('%s', (_name, env, expected) => {
    expect(chooseExporter(env)).toMatchObject(expected as object);
  });

  it.each([
    ['an unknown exporter', { OTEL_METRICS_EXPORTER: 'jaeger' }, /OTEL_METRICS_EXPORTER=jaeger is not supported \(use prometheus, otlp, console or none\)/],
    // As in the Go worker, only the exact value `none` disables metrics.
    ['NONE in capitals', { OTEL_METRICS_EXPORTER: 'NONE' }, /not supported/],
    [
      'a port that is not a number',
      { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_PORT: 'http' },
      /OTEL_EXPORTER_PROMETHEUS_PORT=http is not a port number/,
    ],
  ])('refuses %s with a message that says what to set', (_name, env, message) => {
    const choice = chooseExporter(env);
    expect(choice.kind).toBe('invalid');
    expect((choice as { message: string }).message).toMatch(message);
  });
});

describe('startMetrics', () => {
  it('is a safe no-op when metrics are off', async () => {
    running = await startMetrics({ env: { OTEL_METRICS_EXPORTER: 'none' }, version: 'dev', workerId: 'w', backendLabel: '', log: silent });
    expect(running.description).toMatch(/^off/);
    // Every hook can be called without an SDK behind it.
    running.metrics.setConnected(true);
    running.metrics.tasksActive(1);
    running.metrics.taskFinished('succeeded', 1);
    running.metrics.taskFailed('backend', 'unknown');
    running.metrics.reconnect('dial_failed');
  });

  it('keeps the worker running without metrics when the exporter is misconfigured', async () => {
    running = await startMetrics({ env: { OTEL_METRICS_EXPORTER: 'jaeger' }, version: 'dev', workerId: 'w', backendLabel: '', log: silent });
    expect(running.description).toMatch(/^off \(OTEL_METRICS_EXPORTER=jaeger is not supported/);
    running.metrics.taskClaimed();
  });

  it('primes every bounded series at zero, but not the duration histogram', async () => {
    const { scrape } = await prometheus();
    const text = await scrape();
    const series = samples(text);
    expect(text).toContain('otel_scope_name="github.com/warpdotdev/oz-agent-worker"');
    for (const name of ['oz_worker_connected', 'oz_worker_tasks_active', 'oz_worker_tasks_max_concurrent', 'oz_worker_tasks_claimed_total'])
      expect(series.get(name), name).toBe(0);
    expect(series.get('oz_worker_tasks_rejected_total{reason="at_capacity"}')).toBe(0);
    for (const result of ['succeeded', 'failed', 'cancelled', 'dispatched']) expect(series.get(`oz_worker_tasks_completed_total{result="${result}"}`)).toBe(0);
    for (const phase of FAILURE_PHASES) {
      for (const reason of FAILURE_REASONS)
        expect(series.get(`oz_worker_task_failures_total{phase="${phase}",reason="${reason}"}`), `${phase}/${reason}`).toBe(0);
    }
    for (const reason of ['dial_failed', 'remote_close']) expect(series.get(`oz_worker_websocket_reconnects_total{reason="${reason}"}`)).toBe(0);
    expect(text).not.toContain('oz_worker_task_duration_seconds');
  });

  it('moves each series as the worker reports', async () => {
    const { metrics, scrape } = await prometheus();
    metrics.tasksActive(1);
    metrics.tasksActive(1);
    metrics.tasksActive(1);
    metrics.tasksActive(-1);
    metrics.setConnected(true);
    metrics.setMaxConcurrent(0);
    metrics.setMaxConcurrent(4);
    metrics.taskClaimed();
    metrics.taskRejected('at_capacity');
    metrics.taskRejected('at_capacity');
    metrics.taskRejected('shutting_down');
    metrics.taskFinished('succeeded', 3);
    metrics.taskFinished('succeeded', 12);
    metrics.taskFinished('failed', 1);
    metrics.taskFailed('backend', 'image_pull');
    metrics.reconnect('dial_failed');
    const series = samples(await scrape());
    expect(series.get('oz_worker_tasks_active')).toBe(2);
    expect(series.get('oz_worker_connected')).toBe(1);
    expect(series.get('oz_worker_tasks_max_concurrent')).toBe(4);
    expect(series.get('oz_worker_tasks_claimed_total')).toBe(1);
    expect(series.get('oz_worker_tasks_rejected_total{reason="at_capacity"}')).toBe(2);
    expect(series.get('oz_worker_tasks_rejected_total{reason="shutting_down"}')).toBe(1);
    expect(series.get('oz_worker_tasks_completed_total{result="succeeded"}')).toBe(2);
    expect(series.get('oz_worker_tasks_completed_total{result="failed"}')).toBe(1);
    expect(series.get('oz_worker_task_duration_seconds_count{result="succeeded"}')).toBe(2);
    expect(series.get('oz_worker_task_duration_seconds_sum{result="succeeded"}')).toBe(15);
    // The SDK's default boundaries, as in the Go worker: 3 s falls in le=5, 12 s in le=25.
    expect(series.get('oz_worker_task_duration_seconds_bucket{result="succeeded",le="5"}')).toBe(1);
    expect(series.get('oz_worker_task_duration_seconds_bucket{result="succeeded",le="10"}')).toBe(1);
    expect(series.get('oz_worker_task_duration_seconds_bucket{result="succeeded",le="25"}')).toBe(2);
    expect(series.get('oz_worker_task_failures_total{phase="backend",reason="image_pull"}')).toBe(1);
    expect(series.get('oz_worker_websocket_reconnects_total{reason="dial_failed"}')).toBe(1);

    metrics.setConnected(false);
    expect(samples(await scrape()).get('oz_worker_connected')).toBe(0);
  });

  it('labels oz_worker_info and the resource (target_info) like the Go worker', async () => {
    // The SDK's environment detector reads the process environment itself.
    const saved = { attributes: process.env.OTEL_RESOURCE_ATTRIBUTES, service: process.env.OTEL_SERVICE_NAME };
    process.env.OTEL_RESOURCE_ATTRIBUTES = 'deployment.environment=prod';
    process.env.OTEL_SERVICE_NAME = 'something-else';
    let series: Map<string, number>;
    try {
      const { scrape } = await prometheus();
      series = samples(await scrape());
    } finally {
      for (const [name, value] of [
        ['OTEL_RESOURCE_ATTRIBUTES', saved.attributes],
        ['OTEL_SERVICE_NAME', saved.service],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
    expect(series.get('oz_worker_info{version="v1.2.3",backend="kubernetes",worker_id="alpha"}')).toBe(1);
    const target = [...series.keys()].find((key) => key.startsWith('target_info'));
    expect(target).toContain('service_name="oz-agent-worker"');
    expect(target).toContain('service_version="v1.2.3"');
    expect(target).toContain('worker_id="alpha"');
    expect(target).toContain('worker_backend="kubernetes"');
    // Operators' own attributes are kept; service.name stays the worker's, as dashboards expect.
    expect(target).toContain('deployment_environment="prod"');
    expect(target).not.toContain('something-else');
  });

  it('reports an implied docker backend as an empty label and no worker.backend attribute', async () => {
    const { scrape } = await prometheus({ backendLabel: '' });
    const series = samples(await scrape());
    expect(series.get('oz_worker_info{version="v1.2.3",backend="",worker_id="alpha"}')).toBe(1);
    expect([...series.keys()].find((key) => key.startsWith('target_info'))).not.toContain('worker_backend');
  });

  /** Runs an OTLP exporter against a recording collector; `endpoint` may name another host when the collector is the proxy. */
  async function pushOnce(settings: (collectorUrl: string) => { endpoint: string; env?: Record<string, string> }) {
    const received: { path: string; body: string }[] = [];
    const collector = createHttpServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push({ path: request.url ?? '', body });
        response.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const { endpoint, env } = settings(`http://127.0.0.1:${(collector.address() as { port: number }).port}`);
    // The OTLP exporter reads its endpoint from the process environment itself.
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
    try {
      running = await startMetrics({
        env: { OTEL_METRICS_EXPORTER: 'otlp', ...env },
        version: 'v1.2.3',
        workerId: 'alpha',
        backendLabel: 'direct',
        log: silent,
      });
      running.metrics.taskClaimed();
      // The periodic push is a minute apart; shutdown must not lose what was recorded since.
      await running.shutdown();
      running = undefined;
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
      await new Promise((resolve) => collector.close(resolve));
    }
    return received;
  }

  it('pushes OTLP through HTTP_PROXY, as the Go exporter does', async () => {
    const received = await pushOnce((collectorUrl) => ({ endpoint: 'http://otel-collector.invalid:4318', env: { HTTP_PROXY: collectorUrl } }));
    // A forward proxy receives the absolute URL of the real destination.
    expect(received.map((r) => r.path)).toContain('http://otel-collector.invalid:4318/v1/metrics');
  });

  it('pushes OTLP over HTTP to the configured endpoint, and flushes on shutdown', async () => {
    const received = await pushOnce((collectorUrl) => ({ endpoint: collectorUrl, env: { HTTP_PROXY: 'http://127.0.0.1:9', NO_PROXY: '127.0.0.1' } }));
    expect(received.map((r) => r.path)).toContain('/v1/metrics');
    const payload = JSON.parse(received.find((r) => r.path === '/v1/metrics')!.body) as {
      resourceMetrics: {
        scopeMetrics: { scope: { name: string }; metrics: { name: string; sum?: { dataPoints: { asInt?: number | string; asDouble?: number }[] } }[] }[];
      }[];
    };
    const scope = payload.resourceMetrics[0]!.scopeMetrics[0]!;
    expect(scope.scope.name).toBe('github.com/warpdotdev/oz-agent-worker');
    const claimed = scope.metrics.find((m) => m.name === 'oz_worker_tasks_claimed_total');
    const point = claimed?.sum?.dataPoints[0];
    expect(Number(point?.asInt ?? point?.asDouble)).toBe(1);
    expect(scope.metrics.map((m) => m.name)).toEqual(expect.arrayContaining(['oz_worker_connected', 'oz_worker_task_failures_total', 'oz_worker_info']));
  });

  it('stops serving /metrics on shutdown', async () => {
    const { scrape } = await prometheus();
    await scrape();
    await running!.shutdown();
    running = undefined;
    await expect(scrape()).rejects.toThrow();
  });
});
