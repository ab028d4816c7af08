// `oz-worker server` as a child process through the real bin, on 127.0.0.1 with
// a free port and a temp state directory: the server exactly as an operator runs
// it, seeded through its admin API, with real workers and bare probe sockets.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient, type TaskJson } from '../../src/local/api-client.js';
import { seedTeam, seedUser, until, ProbeWorker } from './local-server.js';
import { FAKE_OZ, startWorker, tempDir, type WorkerProcess } from './worker-process.js';

export interface ServerProcess {
  process: WorkerProcess;
  stateDir: string;
  httpUrl: string;
  webSocketUrl: string;
  adminKey: string;
  admin: ApiClient;
  as(key: string): ApiClient;
  createUser(name: string): Promise<{ id: number; key: string; keyId: number }>;
  createTeam(name: string, options?: { members?: number[]; defaultAgent?: Record<string, unknown> }): Promise<{ id: number; key: string; keyId: number }>;
  /** A real worker (direct backend, fake oz) connected with `key`. */
  startWorker(key: string, options?: { workerId?: string; args?: string[]; env?: Record<string, string>; webSocketUrl?: string }): WorkerProcess;
  probe(key: string, workerId: string, deviceId?: string, headers?: Record<string, string>): Promise<ProbeWorker>;
  waitForTask(client: ApiClient, taskId: string, states: string[], timeoutMs?: number): Promise<TaskJson>;
  /** Server log lines whose message matches. */
  logged(pattern: RegExp): boolean;
  close(): Promise<void>;
}

/** Starts `oz-worker server --listen 127.0.0.1:0` with `args`; resolves once it listens. */
export async function startServerProcess(options: { args?: string[]; umask?: string; stateDirMode?: number } = {}): Promise<ServerProcess> {
  const dir = tempDir('server-proc');
  const stateDir = join(dir.path, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  if (options.stateDirMode !== undefined) chmodSync(stateDir, options.stateDirMode);
  const serverArgs = ['server', '--listen', '127.0.0.1:0', '--state-dir', stateDir, '--log-level', 'info', ...(options.args ?? [])];
  const child = startWorker({ args: serverArgs, ...(options.umask === undefined ? {} : { umask: options.umask }) });
  const listening = await until(
    () => child.rawOutput.map((l) => /listening on (http:\/\/\S+)/.exec(l)?.[1]).find(Boolean) ?? (child.child.exitCode !== null ? 'exited' : undefined),
    20_000,
    'the server to listen',
  );
  if (listening === 'exited') throw new Error(`oz-worker server exited: ${child.output}`);
  const httpUrl = listening;
  const webSocketUrl = `${httpUrl.replace(/^http/, 'ws')}/api/v1/selfhosted/worker/ws`;
  const adminKey = readFileSync(join(stateDir, 'admin.key'), 'utf8').trim();
  const admin = new ApiClient(httpUrl, adminKey);
  const workers: WorkerProcess[] = [];
  const probes: ProbeWorker[] = [];
  const recordDir = join(dir.path, 'records');
  mkdirSync(recordDir);

  return {
    process: child,
    stateDir,
    httpUrl,
    webSocketUrl,
    adminKey,
    admin,
    as: (key) => new ApiClient(httpUrl, key),
    createUser: (name) => seedUser(admin, name),
    createTeam: (name, teamOptions) => seedTeam(admin, name, teamOptions),
    startWorker(key, workerOptions = {}) {
      const workerId = workerOptions.workerId ?? `worker-${workers.length + 1}`;
      const config = join(dir.path, `${workerId}-${workers.length}.yaml`);
      writeFileSync(
        config,
        ['backend:', '  direct:', `    oz_path: ${FAKE_OZ}`, `    workspace_root: ${join(dir.path, 'ws', `${workerId}-${workers.length}`)}`].join('\n'),
      );
      const worker = startWorker({
        args: [
          '--worker-id',
          workerId,
          '--config-file',
          config,
          '--web-socket-url',
          workerOptions.webSocketUrl ?? webSocketUrl,
          '--server-root-url',
          httpUrl,
          '-e',
          `OZ_RECORD_DIR=${recordDir}`,
          ...(workerOptions.args ?? []),
        ],
        env: { WARP_API_KEY: key, ...workerOptions.env },
      });
      workers.push(worker);
      return worker;
    },
    async probe(key, workerId, deviceId, headers) {
      const p = await ProbeWorker.connect(webSocketUrl, key, workerId, deviceId, headers);
      probes.push(p);
      return p;
    },
    waitForTask: (client, taskId, states, timeoutMs = 15_000) =>
      until(
        async () => {
          const task = await client.task(taskId);
          return states.includes(task.state) ? task : undefined;
        },
        timeoutMs,
        `task ${taskId} to reach ${states.join('/')}`,
      ),
    logged: (pattern) => child.logs.some((line) => pattern.test(line.msg)),
    async close() {
      await Promise.all(probes.map((p) => p.close()));
      await Promise.all(workers.map((w) => w.stop()));
      child.signal('SIGTERM');
      const timer = setTimeout(() => child.signal('SIGKILL'), 10_000);
      await child.exited;
      clearTimeout(timer);
      dir.cleanup();
    },
  };
}
