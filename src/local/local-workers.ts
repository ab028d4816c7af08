// The worker processes `oz-worker local` runs: each is the real worker (the
// bin, as an operator would start it), tied to `local` by an IPC channel so it
// stops its agents and exits as soon as `local` is gone, however it died.
import { spawn, type ChildProcess } from 'node:child_process';
import type { RunningServer } from '../server/server.js';
import { binScript } from './package-root.js';
import { EXIT_WITH_PARENT_ENV } from '../config/oz-worker-env.js';
const CONNECT_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 35_000;

export interface LocalWorkerSpec {
  workerId: string;
  /** The key it connects with; travels in the environment, never on a command line. */
  key: string;
  /** Whose tasks it runs, for messages: `team demo-team`. */
  runs: string;
}

export interface LocalWorker {
  spec: LocalWorkerSpec;
  child: ChildProcess;
  exited: Promise<number>;
}

export interface WorkerLaunch {
  server: RunningServer;
  stateDir: string;
  logLevel: string;
  /** `--config-file`/`--backend` from the config plan. */
  configArgs: string[];
  ozPath: string | undefined;
  maxConcurrentTasks: string | undefined;
}

/** The worker's argv after the bin script. Pure. */
export function localWorkerArgs(spec: LocalWorkerSpec, launch: Omit<WorkerLaunch, 'server'> & { webSocketUrl: string; httpUrl: string }): string[] {
  const args = ['--worker-id', spec.workerId, '--web-socket-url', launch.webSocketUrl, '--server-root-url', launch.httpUrl, '--log-level', launch.logLevel];
  // The journal of each worker lives with the server it belongs to.
  args.push('--state-dir', launch.stateDir, ...launch.configArgs);
  if (launch.maxConcurrentTasks !== undefined) args.push('--max-concurrent-tasks', launch.maxConcurrentTasks);
  if (launch.ozPath) args.push('--oz-path', launch.ozPath);
  return args;
}

export function startLocalWorker(spec: LocalWorkerSpec, launch: WorkerLaunch): LocalWorker {
  const args = localWorkerArgs(spec, { ...launch, webSocketUrl: launch.server.localWebSocketUrl, httpUrl: launch.server.localHttpUrl });
  const child = spawn(process.execPath, [binScript(), ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, WARP_API_KEY: spec.key, [EXIT_WITH_PARENT_ENV]: '1' },
  });
  // The channel exists to tell the worker when we are gone; it must not keep us alive.
  child.channel?.unref();
  const exited = new Promise<number>((resolveExit) => child.once('exit', (code, signal) => resolveExit(code ?? (signal ? 128 : 1))));
  return { spec, child, exited };
}

export async function stopLocalWorker(worker: LocalWorker): Promise<void> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  worker.child.kill('SIGTERM');
  const timer = setTimeout(() => worker.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await worker.exited;
  clearTimeout(timer);
}

/** Resolves once every worker is connected; rejects when one exits first, does not connect in time, or `abort` fires. */
export async function waitForLocalWorkers(server: RunningServer, workers: LocalWorker[], abort: Promise<unknown>): Promise<void> {
  const deadline = Date.now() + CONNECT_TIMEOUT_MS;
  const exited = new Set<string>();
  for (const worker of workers) void worker.exited.then(() => exited.add(worker.spec.workerId));
  let aborted = false;
  void abort.then(() => (aborted = true));
  for (;;) {
    const connected = new Set(server.dispatcher.connectedWorkers.map((w) => w.workerId));
    const missing = workers.filter((w) => !connected.has(w.spec.workerId));
    if (missing.length === 0) return;
    if (aborted) throw new Error('stopped before the workers connected');
    const gone = missing.find((w) => exited.has(w.spec.workerId));
    if (gone) throw new Error(`the worker "${gone.spec.workerId}" exited before it connected; its error is printed above`);
    if (Date.now() > deadline)
      throw new Error(`the worker "${missing[0]!.spec.workerId}" did not connect within ${CONNECT_TIMEOUT_MS / 1000} s; see its log above`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
