// Assembles a running worker from a resolved configuration: logger, backend,
// outbox, connection, worker core and shutdown, wired to process signals.
import { createBackend } from '../backends/registry.js';
import type { WorkerConfig } from '../config/worker-config.js';
import type { ConnectionTuning } from '../config/oz-worker-env.js';
import { DEFAULT_BACKOFF } from '../connection/backoff.js';
import { Connection, type ConnectionTimings } from '../connection/connection.js';
import { Outbox } from '../connection/outbox.js';
import { TaskOutputSender } from '../connection/task-output.js';
import { dispatchAgent } from '../connection/transport.js';
import { createLogger, SecretScrubber, type Logger } from '../log/logger.js';
import { createShutdown, type Shutdown } from '../worker/shutdown.js';
import { Worker } from '../worker/worker.js';
import { startMetrics } from '../observability/metrics.js';
import { startHealthServer, type HealthServer } from '../observability/health.js';
import { createHttpPoster } from '../observability/http-post.js';
import { VERSION } from '../version.js';
import { Journal, journalPath } from '../worker/journal.js';
import { recoverFromJournal } from '../worker/recovery.js';
import { describeScope } from '../scope/decide.js';
import { watchParent } from '../local/parent-link.js';
import { errorMessage } from '../errors/error-message.js';
import { TaskLogExports } from '../observability/task-logs.js';

export interface RunningWorker {
  worker: Worker;
  connection: Connection;
  outbox: Outbox;
  shutdown: Shutdown;
  log: Logger;
}

/** The connection timings the configuration shortens (`OZ_WORKER_*_MS`, used by tests and the benchmark). */
export function connectionTimings(tuning: ConnectionTuning): Partial<ConnectionTimings> {
  const { pingIntervalMs, pongTimeoutMs, stableAfterMs, reconnectInitialMs, reconnectMaxMs } = tuning;
  return {
    ...(pingIntervalMs === undefined ? {} : { pingIntervalMs }),
    ...(pongTimeoutMs === undefined ? {} : { pongTimeoutMs }),
    ...(stableAfterMs === undefined ? {} : { stableAfterMs }),
    ...(reconnectInitialMs === undefined && reconnectMaxMs === undefined
      ? {}
      : { backoff: { initialMs: reconnectInitialMs ?? DEFAULT_BACKOFF.initialMs, maxMs: reconnectMaxMs ?? DEFAULT_BACKOFF.maxMs } }),
  };
}

export interface RunWorkerOptions {
  env?: NodeJS.ProcessEnv;
  /** Install SIGINT/SIGTERM handlers (off in tests that drive shutdown directly). */
  handleSignals?: boolean;
  exit?: (code: number) => void;
}

export async function runWorker(config: WorkerConfig, options: RunWorkerOptions = {}): Promise<RunningWorker> {
  const env = options.env ?? process.env;
  const scrubber = new SecretScrubber();
  scrubber.add([config.apiKey]);
  const log = await createLogger({ level: config.logLevel, pretty: Boolean(process.stdout.isTTY), scrubber, env });
  const exit =
    options.exit ??
    ((code: number) => {
      const hard = setTimeout(() => process.exit(code), 1_000);
      log.flush(() => {
        clearTimeout(hard);
        process.exit(code);
      });
    });

  for (const warning of config.startupWarnings ?? []) log.warn(warning);
  // Probes get answers from the start: a backend can take minutes to start (the
  // Kubernetes preflight Job), and a liveness probe must not kill the worker meanwhile.
  const readiness = { connected: false, backendProblem: 'the backend is starting' as string | undefined, draining: () => false };
  let health: HealthServer | undefined;
  if (config.healthListen) {
    try {
      health = await startHealthServer(config.healthListen, {
        connected: () => readiness.connected,
        draining: () => readiness.draining(),
        backendProblem: () => readiness.backendProblem,
      });
      log.info({ address: health.address }, `Health endpoints on http://${health.address}/livez and /readyz`);
    } catch (error) {
      log.warn(
        `Cannot serve health endpoints on ${config.healthListen.host}:${config.healthListen.port}: ${errorMessage(error)}; probes will fail (pick another --health-listen)`,
      );
    }
  }
  // The OpenTelemetry SDK loads only when an exporter is configured, while the backend starts.
  const telemetryStarting = startMetrics({ env, version: VERSION, workerId: config.workerId, backendLabel: config.backendLabel, log });
  let backend;
  try {
    backend = await createBackend(config, log);
  } catch (error) {
    await health?.close();
    void telemetryStarting.then((telemetry) => telemetry.shutdown());
    throw error;
  }
  readiness.backendProblem = undefined;
  const telemetry = await telemetryStarting;
  const metrics = telemetry.metrics;
  metrics.setMaxConcurrent(config.maxConcurrentTasks);
  log.info(
    {
      workerId: config.workerId,
      backend: config.backend,
      maxConcurrentTasks: config.maxConcurrentTasks,
      ...(config.oneShot ? { oneShot: true } : {}),
      ...(config.device ? { deviceScope: describeScope(config.device) } : {}),
    },
    config.device
      ? `Starting oz-worker in device mode: only tasks of ${describeScope(config.device)}`
      : config.oneShot
        ? 'Starting oz-worker in one-shot mode: it runs one task, then exits'
        : 'Starting oz-worker',
  );

  const outbox = new Outbox();
  const journal = config.stateDir ? new Journal(journalPath(config.stateDir, config.workerId), () => outbox.entries(), log) : undefined;
  const previous = journal?.load();
  // Set once the connection exists: output goes only to a server that announced it takes it.
  let connectionRef: Connection | undefined;
  // Set once the shutdown exists (a one-shot worker starts it when its task is over).
  let shutdownRef: Shutdown | undefined;
  const output = new TaskOutputSender({
    enabled: () => connectionRef?.acceptsTaskOutput ?? false,
    send: (text) => connectionRef?.sendExtensionFrame(text) ?? false,
    scrub: (line) => scrubber.scrub(line),
  });
  // The tasks' setup phases and logs go out through the dispatch connection's proxy and CA.
  const poster = createHttpPoster({ env, ca: config.caPem });
  // Off with collect_task_logs: no task gets an identity call or an export.
  const taskLogs = config.collectTaskLogs
    ? new TaskLogExports({
        collect: true,
        serverRootUrl: config.serverRootUrl,
        workerId: config.workerId,
        backend: config.backend,
        workerApiKey: config.apiKey,
        poster,
      })
    : undefined;
  const worker: Worker = new Worker({
    config,
    backend,
    log,
    scrubber,
    metrics,
    clientEvents: poster,
    send: (message) => {
      // A task's last output lines go out before its status, so the server still takes them.
      output.flush();
      outbox.enqueue(message);
    },
    onClaimed: (taskId, executionId) => journal?.claimed(taskId, executionId),
    onHandedOff: (taskId) => journal?.handedOff(taskId),
    onOutput: (taskId, stream, line) => output.line(taskId, stream, line),
    onLeftovers: (taskId, key, note) => journal?.leftovers(key, taskId, note),
    ...(taskLogs ? { taskLogs } : {}),
    // One-shot: the task's status is queued; the shutdown delivers it (reconnecting if need be), then exits 0.
    onOneShotDone: () => {
      if (shutdownRef?.started) return;
      log.info('One-shot mode: the task is over; delivering its status and exiting');
      void shutdownRef?.begin('one-shot task finished');
    },
  });
  readiness.draining = () => worker.isDraining;
  const connection = new Connection({
    url: config.webSocketUrl,
    workerId: config.workerId,
    deviceId: config.device?.deviceId,
    apiKey: config.apiKey,
    outbox,
    log,
    onFrame: (text) => worker.handleFrame(text),
    onStateChange: (state) => {
      readiness.connected = state === 'open';
      metrics.setConnected(readiness.connected);
    },
    onReconnect: (reason) => metrics.reconnect(reason),
    timings: connectionTimings(config.connectionTuning),
    agent: dispatchAgent({ url: config.webSocketUrl, env, ...(config.caPem ? { ca: config.caPem } : {}) }),
  });
  connectionRef = connection;

  const shutdown = createShutdown({
    log,
    graceMs: config.shutdownGraceMs,
    drainTasks: (deadline) => worker.drain(deadline),
    outboxDrained: () => outbox.drained(),
    pendingMessages: () => outbox.size,
    closeConnection: () => connection.stop(),
    shutdownBackend: async () => {
      await backend.shutdown();
      await telemetry.shutdown();
      poster.close();
    },
    // The journal's last write (nothing pending, nothing running) lands before the process ends.
    exit: (code) => void (journal?.settled() ?? Promise.resolve()).then(() => health?.close()).finally(() => exit(code)),
  });
  shutdownRef = shutdown;

  if (options.handleSignals ?? true) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => void shutdown.begin(signal));
    }
  }
  // Started by `oz-worker local`: its server went with it, so nothing is left to deliver to.
  watchParent(config.exitWithParent, () => {
    log.warn('oz-worker local, which started this worker, is gone; stopping the tasks and exiting');
    // No reconnecting meanwhile: a restarted `local` must not meet this worker.
    void connection.stop();
    void shutdown.begin('parent exited', { deliver: false });
  });
  log.info(`Metrics: ${telemetry.description}`);
  const resumed = backend.resumableTasks ? await backend.resumableTasks() : [];
  worker.adopt(resumed);
  if (previous) recoverFromJournal(previous, resumed, outbox, log);
  const leftovers = previous?.leftovers ?? [];
  if (journal) {
    // The new log starts from what was just re-queued; from here on it records every change.
    journal.carryOver(leftovers);
    journal.start();
    outbox.observer = journal;
  }
  // What the tasks of the previous process left behind (processes, workspaces) goes, in the background.
  if (leftovers.length > 0 && backend.recoverLeftovers) {
    log.info({ count: leftovers.length }, 'Cleaning up after tasks the previous worker process was running');
    backend.recoverLeftovers(leftovers, (key) => journal?.leftovers(key, '', undefined));
  }
  connection.start();
  return { worker, connection, outbox, shutdown, log };
}
