// `oz-worker server` and `oz-worker local`: the local dispatch server alone, or
// together with a worker connected to it (a child process, exactly as an
// operator would run it), seeded with a demo identity.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findOnPath } from '../backends/direct/direct-backend.js';
import { BACKEND_NAMES } from '../backends/backend.js';
import { platformDirs } from '../config/locations.js';
import { InvalidDurationError, parseGoDuration } from '../config/go-duration.js';
import { createLogger, type Logger, type LogLevel } from '../log/logger.js';
import type { DispatcherTimings } from '../server/dispatcher.js';
import { isLoopback, parseListen, ServerStartError, startServer, type RunningServer } from '../server/server.js';
import { ApiClient, type TaskEventJson } from './api-client.js';
import { ensureDemoIdentity } from './seed.js';
import { binScript, standInAgentPath } from './package-root.js';
import { writeServerAddress } from './server-address.js';
import { readLocalSettings, writeLocalSettings } from './settings.js';

export const DEFAULT_LISTEN = '127.0.0.1:7317';
export const LOCAL_WORKER_ID = 'local-worker';
const WORKER_CONNECT_TIMEOUT_MS = 30_000;
const WORKER_STOP_TIMEOUT_MS = 35_000;

export class UsageError extends Error {}

export interface ServerFlags {
  listen?: string;
  allowRemote?: boolean;
  stateDir?: string;
  logLevel?: LogLevel;
  claimTimeout?: string;
  lostTimeout?: string;
}

export interface LocalFlags extends ServerFlags {
  backend?: string;
  ozPath?: string;
  configFile?: string;
  demo?: boolean;
  once?: boolean;
  maxConcurrentTasks?: string;
}

export function stateDirFrom(flags: { stateDir?: string }, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flags.stateDir || env.OZ_WORKER_STATE_DIR || platformDirs().stateDir);
}

/** `--listen` text problems are usage errors (exit 2). */
function listenAddress(text: string): { host: string; port: number } {
  try {
    return parseListen(text);
  } catch (error) {
    if (error instanceof ServerStartError) throw new UsageError(error.message);
    throw error;
  }
}

function duration(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    const ms = parseGoDuration(text);
    if (ms <= 0) throw new InvalidDurationError(text);
    return ms;
  } catch {
    throw new UsageError(`invalid ${flag} ${JSON.stringify(text)}: use a duration such as 30s or 5m`);
  }
}

function timingsFrom(flags: ServerFlags): Partial<DispatcherTimings> {
  const timings: Partial<DispatcherTimings> = {};
  const claim = duration(flags.claimTimeout, '--claim-timeout');
  const lost = duration(flags.lostTimeout, '--lost-timeout');
  if (claim !== undefined) timings.claimTimeoutMs = claim;
  if (lost !== undefined) timings.lostTimeoutMs = lost;
  return timings;
}

async function startFromFlags(flags: ServerFlags, log: Logger): Promise<{ server: RunningServer; stateDir: string }> {
  const listenText = flags.listen ?? DEFAULT_LISTEN;
  const { host, port } = listenAddress(listenText);
  if (flags.allowRemote && flags.listen === undefined) throw new UsageError('--allow-remote needs an explicit --listen address');
  if (!isLoopback(host) && !flags.allowRemote) {
    throw new UsageError(`refusing to listen on ${host}: the server is meant for this machine; add --allow-remote to expose it (callers still need a key)`);
  }
  const stateDir = stateDirFrom(flags);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const server = await startServer({ stateDir, host, port, allowRemote: flags.allowRemote ?? false, log, timings: timingsFrom(flags) });
  writeServerAddress(stateDir, server.httpUrl);
  return { server, stateDir };
}

/** Resolves once SIGINT or SIGTERM arrives. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

export async function runServerCommand(flags: ServerFlags): Promise<number> {
  const log = await createLogger({ level: flags.logLevel ?? 'info', pretty: Boolean(process.stdout.isTTY) });
  const { server, stateDir } = await startFromFlags(flags, log);
  // Listening before saying so: a Ctrl-C right after the text must find the handler.
  const signalled = untilSignal();
  process.stderr.write(
    [
      `oz-worker server is listening on ${server.httpUrl}`,
      `  workers connect with:  --web-socket-url ${server.webSocketUrl} --server-root-url ${server.httpUrl}`,
      `  admin key (users, teams, keys, devices): ${join(stateDir, 'admin.key')}`,
      `  administer with:       oz-worker admin user list${flags.stateDir ? ` --state-dir ${/\s/.test(stateDir) ? JSON.stringify(stateDir) : stateDir}` : ''}   (all commands: oz-worker admin --help)`,
      '',
    ].join('\n'),
  );
  await signalled;
  await server.close();
  return 0;
}

function line(text: string): void {
  process.stdout.write(`${text}\n`);
}

function formatEvent(event: TaskEventJson): string {
  const time = event.at.slice(11, 19);
  return `  ${time}  ${event.kind.padEnd(12)} ${event.detail}`;
}

interface LocalWorker {
  child: ChildProcess;
  exited: Promise<number>;
}

function startWorker(options: { server: RunningServer; stateDir: string; workerKey: string; flags: LocalFlags; ozPath: string | undefined }): LocalWorker {
  const { server, stateDir, workerKey, flags, ozPath } = options;
  const backend = flags.backend ?? 'direct';
  const args = [
    binScript(),
    '--worker-id',
    LOCAL_WORKER_ID,
    '--web-socket-url',
    server.webSocketUrl,
    '--server-root-url',
    server.httpUrl,
    '--log-level',
    flags.logLevel ?? 'info',
  ];
  if (flags.maxConcurrentTasks !== undefined) args.push('--max-concurrent-tasks', flags.maxConcurrentTasks);
  if (flags.configFile) {
    args.push('--config-file', flags.configFile);
  } else {
    // The direct backend's default workspace root is a system path; keep the demo's under the state dir.
    const config = join(stateDir, 'local-worker.yaml');
    const direct = backend === 'direct' ? `backend:\n  direct:\n    workspace_root: ${JSON.stringify(join(stateDir, 'workspaces'))}\n` : '';
    writeFileSync(config, `# Written by oz-worker local; pass --config-file to use your own.\n${direct}`, { mode: 0o600 });
    args.push('--config-file', config);
    if (backend !== 'direct') args.push('--backend', backend);
  }
  if (ozPath) args.push('--oz-path', ozPath);
  // The key travels in the environment, never on a command line other users can read.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, WARP_API_KEY: workerKey } });
  const exited = new Promise<number>((resolveExit) => child.once('exit', (code, signal) => resolveExit(code ?? (signal ? 128 : 1))));
  return { child, exited };
}

async function stopWorker(worker: LocalWorker): Promise<void> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  worker.child.kill('SIGTERM');
  const timer = setTimeout(() => worker.child.kill('SIGKILL'), WORKER_STOP_TIMEOUT_MS);
  await worker.exited;
  clearTimeout(timer);
}

async function waitForWorker(server: RunningServer, worker: LocalWorker): Promise<void> {
  const deadline = Date.now() + WORKER_CONNECT_TIMEOUT_MS;
  let exited = false;
  void worker.exited.then(() => (exited = true));
  while (!server.dispatcher.connectedWorkers.some((w) => w.workerId === LOCAL_WORKER_ID)) {
    if (exited) throw new Error('the worker exited before it connected; its error is printed above');
    if (Date.now() > deadline) throw new Error(`the worker did not connect within ${WORKER_CONNECT_TIMEOUT_MS / 1000} s; see its log above`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function runLocalCommand(flags: LocalFlags): Promise<number> {
  const backend = flags.backend ?? 'direct';
  if (!(BACKEND_NAMES as readonly string[]).includes(backend)) throw new UsageError(`invalid --backend ${JSON.stringify(backend)}: use one of ${BACKEND_NAMES.join(', ')}`);
  // The server's own log stays quiet; the worker's log and the progress lines tell the story.
  const log = await createLogger({ level: 'warn', pretty: Boolean(process.stdout.isTTY) });
  const { server, stateDir } = await startFromFlags(flags, log);
  // Listening before "Press Ctrl-C" is printed, so a Ctrl-C right after it is handled, not fatal.
  const signalled = untilSignal();

  const previous = readLocalSettings(stateDir);
  const demo = ensureDemoIdentity(server.store, previous);
  writeLocalSettings(stateDir, { server_url: server.httpUrl, user_key: demo.userKey, worker_key: demo.workerKey, user_id: demo.userId, team_id: demo.teamId });

  let ozPath = flags.ozPath;
  if (backend === 'direct' && !ozPath && !flags.configFile && (await findOnPath('oz', process.env.PATH)) === undefined) {
    ozPath = standInAgentPath();
    if (!existsSync(ozPath)) throw new Error(`no oz CLI on PATH and the stand-in agent ${ozPath} is missing; install oz or pass --oz-path`);
    line(`No oz CLI on PATH: using the STAND-IN agent ${ozPath}.`);
    line('It is not the real agent: it only prints the command line it was given. Install the oz CLI (or pass --oz-path) for real runs.');
  }

  line(`Local dispatch server: ${server.httpUrl}  (state in ${stateDir})`);
  line(`${demo.created ? 'Created' : 'Using'} demo user "demo" (id ${demo.userId}) and team "demo-team" (id ${demo.teamId}); keys in ${join(stateDir, 'local.json')}`);
  line(`Starting worker "${LOCAL_WORKER_ID}" (backend: ${backend})...`);
  const worker = startWorker({ server, stateDir, workerKey: demo.workerKey, flags, ozPath });

  const shutdown = async (): Promise<void> => {
    await stopWorker(worker);
    await server.close();
  };

  try {
    await waitForWorker(server, worker);
  } catch (error) {
    await shutdown();
    throw error;
  }
  line('Worker connected.');

  let exitCode = 0;
  if (flags.demo) {
    const client = new ApiClient(server.httpUrl, demo.userKey);
    const task = await client.submitTask({ prompt: 'Say hello from the oz-worker local demo.', owner: { type: 'TEAM', id: demo.teamId } });
    line(`\nDemo task ${task.id} (team-owned, so the agent gets --share team:edit):`);
    const final = await client.watch(task.id, (event) => line(formatEvent(event)));
    line(`Demo task ${final.state}${final.exit_code ? ` (exit code ${final.exit_code})` : ''}.`);
    exitCode = final.state === 'completed' ? 0 : 1;
  }
  if (flags.once) {
    await shutdown();
    return exitCode;
  }
  line(
    [
      '',
      'Next:',
      '  oz-worker task submit "your prompt" --watch     # a task owned by team demo-team',
      '  oz-worker task submit "your prompt" --user 1    # a task owned by user demo (no team sharing)',
      '  oz-worker task list',
      'Press Ctrl-C to stop the worker and the server.',
    ].join('\n'),
  );
  const reason = await Promise.race([signalled, worker.exited.then((code) => code)]);
  if (typeof reason === 'number') {
    line(`The worker exited (code ${reason}); stopping the server.`);
    await server.close();
    return 1;
  }
  await shutdown();
  return 0;
}
