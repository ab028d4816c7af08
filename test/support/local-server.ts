// The real local dispatch server, in-process on 127.0.0.1:0 with a temp state
// directory, plus helpers to seed identities through its admin API, to start
// real workers against it, and a bare WebSocket "probe" worker that records
// what it is sent (for routing tables).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { silentLogger, type Logger } from '../../src/log/logger.js';
import { ApiClient, type TaskJson } from '../../src/local/api-client.js';
import type { DispatcherTimings } from '../../src/server/dispatcher.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import type { AgentRecord } from './direct-worker.js';
import { FAKE_OZ, startWorker, tempDir, type WorkerProcess } from './worker-process.js';

export async function until<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A user and a key for it, through the admin API. */
export async function seedUser(admin: ApiClient, name: string): Promise<{ id: number; key: string; keyId: number }> {
  const user = await admin.request<{ id: number }>('POST', '/api/v1/users', { name });
  const { key, id: keyId } = await admin.request<{ key: string; id: number }>('POST', '/api/v1/keys', { user_id: user.id });
  return { id: user.id, key, keyId };
}

/** A team (members, default agent) and a team key, through the admin API. */
export async function seedTeam(
  admin: ApiClient,
  name: string,
  options: { members?: number[]; defaultAgent?: Record<string, unknown> } = {},
): Promise<{ id: number; key: string; keyId: number }> {
  const team = await admin.request<{ id: number }>('POST', '/api/v1/teams', { name });
  for (const userId of options.members ?? []) await admin.request('POST', `/api/v1/teams/${team.id}/members`, { user_id: userId });
  if (options.defaultAgent) await admin.request('PUT', `/api/v1/teams/${team.id}/default-agent`, { agent_config: options.defaultAgent });
  const { key, id: keyId } = await admin.request<{ key: string; id: number }>('POST', '/api/v1/keys', { team_id: team.id });
  return { id: team.id, key, keyId };
}

export interface LocalServerHarness {
  server: RunningServer;
  stateDir: string;
  admin: ApiClient;
  /** A client with the given key. */
  as(key: string): ApiClient;
  createUser(name: string): Promise<{ id: number; key: string }>;
  createTeam(name: string, options?: { members?: number[]; defaultAgent?: Record<string, unknown> }): Promise<{ id: number; key: string }>;
  /** Starts a real worker (direct backend, recording fake oz) connected with `key`. */
  startWorker(key: string, options?: { workerId?: string; args?: string[]; env?: Record<string, string> }): WorkerProcess;
  record(taskId: string): AgentRecord | undefined;
  waitForTask(client: ApiClient, taskId: string, states: string[], timeoutMs?: number): Promise<TaskJson>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startLocalServer(options: { timings?: Partial<DispatcherTimings>; stateDir?: string; log?: Logger } = {}): Promise<LocalServerHarness> {
  const dir = tempDir('server');
  const stateDir = options.stateDir ?? join(dir.path, 'state');
  const recordDir = join(dir.path, 'records');
  mkdirSync(recordDir);
  const timings = { retryIntervalMs: 200, ...options.timings };
  const start = (): Promise<RunningServer> => startServer({ stateDir, host: '127.0.0.1', port: 0, log: options.log ?? silentLogger(), timings });
  let server = await start();
  const workers: WorkerProcess[] = [];

  const harness: LocalServerHarness = {
    get server() {
      return server;
    },
    stateDir,
    get admin() {
      return new ApiClient(server.httpUrl, server.adminKey);
    },
    as: (key) => new ApiClient(server.httpUrl, key),
    createUser: (name) => seedUser(harness.admin, name),
    createTeam: (name, teamOptions) => seedTeam(harness.admin, name, teamOptions),
    startWorker(key, workerOptions = {}) {
      const workerId = workerOptions.workerId ?? `worker-${workers.length + 1}`;
      const config = join(dir.path, `${workerId}.yaml`);
      writeFileSync(config, ['backend:', '  direct:', `    oz_path: ${FAKE_OZ}`, `    workspace_root: ${join(dir.path, 'ws', workerId)}`].join('\n'));
      const worker = startWorker({
        args: [
          '--worker-id',
          workerId,
          '--config-file',
          config,
          '--web-socket-url',
          server.webSocketUrl,
          '--server-root-url',
          server.httpUrl,
          '-e',
          `OZ_RECORD_DIR=${recordDir}`,
          ...(workerOptions.args ?? []),
        ],
        env: { WARP_API_KEY: key, ...workerOptions.env },
      });
      workers.push(worker);
      return worker;
    },
    record(taskId) {
      const file = join(recordDir, `${taskId}.json`);
      if (!existsSync(file)) return undefined;
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as AgentRecord;
      } catch {
        return undefined; // the agent is still writing it
      }
    },
    async waitForTask(client, taskId, states, timeoutMs = 15_000) {
      return until(
        async () => {
          const task = await client.task(taskId);
          return states.includes(task.state) ? task : undefined;
        },
        timeoutMs,
        `task ${taskId} to reach ${states.join('/')}`,
      );
    },
    async restart() {
      await server.close();
      server = await start();
    },
    async close() {
      await Promise.all(workers.map((w) => w.stop()));
      await server.close();
      dir.cleanup();
    },
  };
  return harness;
}

/** A bare worker over a real socket: records assignments and answers only when told to. */
export class ProbeWorker {
  readonly assignments: {
    task_id: string;
    execution_id: string;
    task: { owner: unknown; agent_config_snapshot?: unknown };
    env_vars: Record<string, string>;
  }[] = [];
  readonly cancellations: string[] = [];
  /** Resolves with the close code and reason when the socket closes. */
  readonly closed: Promise<{ code: number; reason: string }>;
  private constructor(private readonly socket: WebSocket) {
    this.closed = new Promise((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string; data: never };
      if (frame.type === 'task_assignment') this.assignments.push(frame.data);
      if (frame.type === 'task_cancellation') this.cancellations.push((frame.data as { task_id: string }).task_id);
    });
  }

  /** `headers`: more upgrade headers (e.g. `X-Warp-Worker-Version`). */
  static connect(webSocketUrl: string, key: string, workerId: string, deviceId?: string, headers: Record<string, string> = {}): Promise<ProbeWorker> {
    const url = new URL(webSocketUrl);
    url.searchParams.set('worker_id', workerId);
    if (deviceId) url.searchParams.set('device_id', deviceId);
    const socket = new WebSocket(url, { headers: { Authorization: `Bearer ${key}`, ...headers } });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new ProbeWorker(socket)));
      socket.once('unexpected-response', (_request, response) => reject(new Error(`upgrade refused with HTTP ${response.statusCode}`)));
      socket.once('error', reject);
    });
  }

  /** The HTTP status and body of a refused upgrade, or undefined when the socket opened (it is then closed). */
  static async refusal(webSocketUrl: string, key: string, workerId: string): Promise<{ status: number; body: string } | undefined> {
    const url = new URL(webSocketUrl);
    url.searchParams.set('worker_id', workerId);
    const socket = new WebSocket(url, { headers: { Authorization: `Bearer ${key}` } });
    return new Promise((resolve, reject) => {
      socket.once('open', () => {
        socket.close();
        resolve(undefined);
      });
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      });
      socket.once('error', reject);
    });
  }

  received(taskId: string): boolean {
    return this.assignments.some((a) => a.task_id === taskId);
  }

  send(type: string, data: Record<string, unknown>): void {
    this.socket.send(JSON.stringify({ type, data }));
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close();
    });
  }
}
