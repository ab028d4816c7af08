// The Go worker's metrics, same names, types, labels and label values, through
// the OpenTelemetry SDK (what the Go worker uses, so `otel_scope_name`, OTLP
// push and the OTEL_* variables behave the same for existing dashboards and
// collectors). Loaded only when an exporter is configured.
//
// One deliberate difference: with OTEL_METRICS_EXPORTER unset, the Go worker
// pushes OTLP to localhost and logs failures forever when no collector runs;
// here it pushes only when an OTLP endpoint is configured, else exports nothing.
import { proxyVariables } from '../connection/transport.js';
import type { Logger } from '../log/logger.js';
import { FAILURE_PHASES, FAILURE_REASONS } from '../task/failure.js';
import { noMetrics, type TaskResult, type WorkerMetrics } from './worker-metrics.js';
import { errorMessage } from '../errors/error-message.js';

export const SCOPE_NAME = 'github.com/warpdotdev/oz-agent-worker';
export const TASK_RESULTS: readonly TaskResult[] = ['succeeded', 'failed', 'cancelled', 'dispatched'];
const RECONNECT_REASONS = ['dial_failed', 'remote_close'] as const;

export interface MetricsOptions {
  env: Readonly<Record<string, string | undefined>>;
  version: string;
  workerId: string;
  /** The backend as configured ('' when docker was only implied, as the Go worker reports it). */
  backendLabel: string;
  log: Logger;
}

export interface RunningMetrics {
  metrics: WorkerMetrics;
  /** What is exported where, for the start-up log and `doctor`. */
  description: string;
  shutdown(): Promise<void>;
}

type Exporter = { kind: 'none'; why: string } | { kind: 'prometheus'; host: string; port: number } | { kind: 'otlp' } | { kind: 'console' };

/** Which exporter the environment asks for. Pure. */
export function chooseExporter(env: MetricsOptions['env']): Exporter | { kind: 'invalid'; message: string } {
  const name = env.OTEL_METRICS_EXPORTER;
  if (name === 'none') return { kind: 'none', why: 'OTEL_METRICS_EXPORTER=none' };
  if (name === undefined || name === '') {
    if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) return { kind: 'otlp' };
    return { kind: 'none', why: 'OTEL_METRICS_EXPORTER is unset and no OTLP endpoint is configured' };
  }
  if (name === 'prometheus') {
    const port = Number(env.OTEL_EXPORTER_PROMETHEUS_PORT ?? 9464);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      return { kind: 'invalid', message: `OTEL_EXPORTER_PROMETHEUS_PORT=${env.OTEL_EXPORTER_PROMETHEUS_PORT} is not a port number` };
    }
    return { kind: 'prometheus', host: env.OTEL_EXPORTER_PROMETHEUS_HOST || 'localhost', port };
  }
  if (name === 'otlp') return { kind: 'otlp' };
  if (name === 'console') return { kind: 'console' };
  return { kind: 'invalid', message: `OTEL_METRICS_EXPORTER=${name} is not supported (use prometheus, otlp, console or none)` };
}

/** Starts the exporter the environment asks for; failures are logged and metrics turn off (as in Go). */
export async function startMetrics(options: MetricsOptions): Promise<RunningMetrics> {
  const { log } = options;
  const choice = chooseExporter(options.env);
  if (choice.kind === 'invalid') {
    log.warn(`Metrics are off: ${choice.message}`);
    return { metrics: noMetrics, description: `off (${choice.message})`, shutdown: async () => {} };
  }
  if (choice.kind === 'none') return { metrics: noMetrics, description: `off (${choice.why})`, shutdown: async () => {} };
  try {
    return await startExporter(choice, options);
  } catch (error) {
    log.warn(`Failed to initialize metrics export: ${errorMessage(error)} (continuing without metrics)`);
    return { metrics: noMetrics, description: `off (${errorMessage(error)})`, shutdown: async () => {} };
  }
}

async function startExporter(choice: Exclude<Exporter, { kind: 'none' }>, options: MetricsOptions): Promise<RunningMetrics> {
  const [{ MeterProvider, PeriodicExportingMetricReader, ConsoleMetricExporter }, { resourceFromAttributes, detectResources, envDetector }, { ValueType }] =
    await Promise.all([import('@opentelemetry/sdk-metrics'), import('@opentelemetry/resources'), import('@opentelemetry/api')]);
  // Counts are integers, as the Go worker exports them (OTLP asInt, not asDouble).
  const INT = { valueType: ValueType.INT };
  let reader;
  let description: string;
  if (choice.kind === 'prometheus') {
    const { PrometheusExporter } = await import('@opentelemetry/exporter-prometheus');
    reader = await new Promise<InstanceType<typeof PrometheusExporter>>((resolve, reject) => {
      const exporter: InstanceType<typeof PrometheusExporter> = new PrometheusExporter({ host: choice.host, port: choice.port }, (error) =>
        error ? reject(new Error(`cannot listen on ${choice.host}:${choice.port} for /metrics: ${error.message}`)) : resolve(exporter),
      );
    });
    description = `Prometheus on http://${choice.host}:${choice.port}/metrics`;
  } else if (choice.kind === 'otlp') {
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-http');
    // Through HTTPS_PROXY / HTTP_PROXY unless NO_PROXY exempts the collector, as the Go exporter does.
    const httpAgentOptions = { keepAlive: true, proxyEnv: proxyVariables(options.env) };
    reader = new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ httpAgentOptions }) });
    description = `OTLP push to ${options.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT || options.env.OTEL_EXPORTER_OTLP_ENDPOINT || 'http://localhost:4318'}`;
  } else {
    reader = new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter() });
    description = 'console';
  }

  const attributes: Record<string, string> = { 'service.name': 'oz-agent-worker' };
  if (options.version) attributes['service.version'] = options.version;
  if (options.workerId) attributes['worker.id'] = options.workerId;
  if (options.backendLabel) attributes['worker.backend'] = options.backendLabel;
  const resource = detectResources({ detectors: [envDetector] }).merge(resourceFromAttributes(attributes));
  const provider = new MeterProvider({ resource, readers: [reader] });
  const meter = provider.getMeter(SCOPE_NAME);

  const connected = meter.createGauge('oz_worker_connected', {
    ...INT,
    description: '1 while the worker has an active WebSocket connection to warp-server, 0 otherwise.',
  });
  const active = meter.createUpDownCounter('oz_worker_tasks_active', { ...INT, description: 'Number of tasks the worker is currently executing.' });
  const maxConcurrent = meter.createGauge('oz_worker_tasks_max_concurrent', {
    ...INT,
    description: 'Configured upper bound on concurrent tasks for this worker. 0 means unlimited.',
  });
  const claimed = meter.createCounter('oz_worker_tasks_claimed_total', { ...INT, description: 'Total tasks the worker has claimed since process start.' });
  const rejected = meter.createCounter('oz_worker_tasks_rejected_total', { ...INT, description: 'Total tasks the worker has rejected since process start.' });
  const completed = meter.createCounter('oz_worker_tasks_completed_total', {
    ...INT,
    description: 'Total tasks the worker has finished, labeled by terminal result.',
  });
  const duration = meter.createHistogram('oz_worker_task_duration_seconds', {
    description: 'Wall-clock duration of task execution on the worker, labeled by terminal result.',
    unit: 's',
  });
  const failures = meter.createCounter('oz_worker_task_failures_total', {
    ...INT,
    description: 'Task failures labeled by bounded execution phase and reason.',
  });
  const reconnects = meter.createCounter('oz_worker_websocket_reconnects_total', {
    ...INT,
    description: 'Total WebSocket reconnect attempts since process start.',
  });
  const info = meter.createGauge('oz_worker_info', { ...INT, description: 'Constant 1 with build/runtime metadata as labels.' });

  // Every series exists before the first task, so dashboards and alerts see zeros, not gaps.
  connected.record(0);
  active.add(0);
  maxConcurrent.record(0);
  claimed.add(0);
  rejected.add(0, { reason: 'at_capacity' });
  for (const result of TASK_RESULTS) completed.add(0, { result });
  for (const phase of FAILURE_PHASES) for (const reason of FAILURE_REASONS) failures.add(0, { phase, reason });
  for (const reason of RECONNECT_REASONS) reconnects.add(0, { reason });
  info.record(1, { version: options.version, backend: options.backendLabel, worker_id: options.workerId });

  const metrics: WorkerMetrics = {
    setConnected: (up) => connected.record(up ? 1 : 0),
    setMaxConcurrent: (limit) => maxConcurrent.record(limit),
    taskClaimed: () => claimed.add(1),
    taskRejected: (reason) => rejected.add(1, { reason }),
    tasksActive: (delta) => active.add(delta),
    taskFinished: (result, seconds) => {
      completed.add(1, { result });
      duration.record(seconds, { result });
    },
    taskFailed: (phase, reason) => failures.add(1, { phase, reason }),
    reconnect: (reason) => reconnects.add(1, { reason }),
  };
  return {
    metrics,
    description,
    shutdown: async () => {
      await Promise.race([provider.shutdown(), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    },
  };
}
