// `oz-worker server` and `oz-worker local`: the local dispatch server alone, or
// together with two workers connected to it (child processes, exactly as an
// operator would run them: one for the demo team's tasks, one for the demo
// user's), seeded with a demo identity.
import { commandHint } from './command-hint.js';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { findOnPath } from '../backends/direct/direct-backend.js';
import { BACKEND_NAMES, type BackendName } from '../task/contract.js';
import { platformDirs } from '../config/locations.js';
import { envText, STATE_DIR_ENV } from '../config/oz-worker-env.js';
import { InvalidDurationError, parseGoDuration } from '../config/go-duration.js';
import { createLogger, type Logger, type LogLevel } from '../log/logger.js';
import type { DispatcherTimings } from '../server/dispatcher.js';
import { isLoopback, parseListen, ServerStartError, startServer, type RunningServer } from '../server/server.js';
import { ApiClient, type TaskEventJson } from './api-client.js';
import { ensureDemoIdentity } from './seed.js';
import { startLocalWorker, stopLocalWorker, waitForLocalWorkers, type LocalWorker, type LocalWorkerSpec } from './local-workers.js';
import { standInAgentPath } from './package-root.js';
import { writeServerAddress } from './server-address.js';
import { readLocalSettings, writeLocalSettings } from './settings.js';
import { planWorkerConfig } from './worker-config.js';

export const DEFAULT_LISTEN = '127.0.0.1:7317';
/** Runs the demo team's tasks (a team key). */
export const TEAM_WORKER_ID = 'local-team-worker';
/** Runs the demo user's own tasks (a user key). */
export const USER_WORKER_ID = 'local-user-worker';

export class UsageError extends Error {}

export interface ServerFlags {
  listen?: string;
  allowRemote?: boolean;
  stateDir?: string;
  logLevel?: LogLevel;
  claimTimeout?: string;
  lostTimeout?: string;
  maxQueuedPerPrincipal?: string;
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
  return resolve(flags.stateDir || envText(env, STATE_DIR_ENV) || platformDirs().stateDir);
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

function positiveCount(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`invalid ${flag} ${JSON.stringify(text)}: use a whole number of at least 1`);
  return Number(text);
}

function timingsFrom(flags: ServerFlags): Partial<DispatcherTimings> {
  const timings: Partial<DispatcherTimings> = {};
  const claim = duration(flags.claimTimeout, '--claim-timeout');
  const lost = duration(flags.lostTimeout, '--lost-timeout');
  if (claim !== undefined) timings.claimTimeoutMs = claim;
  if (lost !== undefined) timings.lostTimeoutMs = lost;
  return timings;
}

async function startFromFlags(flags: ServerFlags, log: Logger, command: 'server' | 'local'): Promise<{ server: RunningServer; stateDir: string }> {
  const listenText = flags.listen ?? DEFAULT_LISTEN;
  const { host, port } = listenAddress(listenText);
  if (flags.allowRemote && flags.listen === undefined) throw new UsageError('--allow-remote needs an explicit --listen address');
  // Names are resolved (and checked the same way) by the server.
  if (isIP(host) !== 0 && !isLoopback(host) && !flags.allowRemote) {
    throw new UsageError(`refusing to listen on ${host}: the server is meant for this machine; add --allow-remote to expose it (callers still need a key)`);
  }
  const stateDir = stateDirFrom(flags);
  const maxQueued = positiveCount(flags.maxQueuedPerPrincipal, '--max-queued-per-principal');
  // The server creates the state directory only once its port is bound.
  const server = await startServer({
    stateDir,
    host,
    port,
    allowRemote: flags.allowRemote ?? false,
    log,
    timings: timingsFrom(flags),
    command,
    ...(maxQueued === undefined ? {} : { maxQueuedPerPrincipal: maxQueued }),
  });
  writeServerAddress(stateDir, server.localHttpUrl);
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
  const signalled = untilSignal();
  const log = await createLogger({ level: flags.logLevel ?? 'info', pretty: Boolean(process.stdout.isTTY) });
  const { server, stateDir } = await startFromFlags(flags, log, 'server');
  process.stderr.write(
    [
      `oz-worker server is listening on ${server.httpUrl}`,
      `  workers connect with:  --web-socket-url ${server.webSocketUrl} --server-root-url ${server.httpUrl}`,
      `  admin key (users, teams, keys, devices): ${join(stateDir, 'admin.key')}`,
      `  administer with:       ${commandHint('admin user list')}${flags.stateDir ? ` --state-dir ${/\s/.test(stateDir) ? JSON.stringify(stateDir) : stateDir}` : ''}   (all commands: ${commandHint('admin --help')})`,
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

/** The stand-in agent when the direct backend would otherwise find no oz CLI. */
async function standInAgent(backend: BackendName, flags: LocalFlags, fileSetsOzPath: boolean): Promise<string | undefined> {
  if (backend !== 'direct' || flags.ozPath || fileSetsOzPath || (await findOnPath('oz', process.env.PATH)) !== undefined) return flags.ozPath;
  const ozPath = standInAgentPath();
  if (!existsSync(ozPath)) throw new Error(`no oz CLI on PATH and the stand-in agent ${ozPath} is missing; install oz or pass --oz-path`);
  line(`No oz CLI on PATH: using the STAND-IN agent ${ozPath}.`);
  line('It is not the real agent: it only prints the command line it was given. Install the oz CLI (or pass --oz-path) for real runs.');
  return ozPath;
}

/** Submits one demo task and prints its progress; true when it completed. */
async function runDemoTask(client: ApiClient, heading: string, body: Record<string, unknown>): Promise<boolean> {
  const task = await client.submitTask(body);
  line(`\n${heading} (task ${task.id}):`);
  const final = await client.watch(task.id, (event) => line(formatEvent(event)));
  line(`Demo task ${final.state}${final.exit_code ? ` (exit code ${final.exit_code})` : ''}.`);
  return final.state === 'completed';
}

class StopRequested extends Error {}

export async function runLocalCommand(flags: LocalFlags): Promise<number> {
  // From the first moment: a stop request while starting or during the demo stops the workers and the server.
  const signalled = untilSignal();
  const stopped = signalled.then(() => Promise.reject(new StopRequested()));
  stopped.catch(() => undefined);
  const unlessStopped = <T>(work: Promise<T>): Promise<T> => Promise.race([work, stopped]);
  if (flags.backend !== undefined && !(BACKEND_NAMES as readonly string[]).includes(flags.backend)) {
    throw new UsageError(`invalid --backend ${JSON.stringify(flags.backend)}: use one of ${BACKEND_NAMES.join(', ')}`);
  }
  // The server's own log stays quiet; the workers' logs and the progress lines tell the story.
  const log = await createLogger({ level: 'warn', pretty: Boolean(process.stdout.isTTY) });
  const { server, stateDir } = await startFromFlags(flags, log, 'local');
  const workers: LocalWorker[] = [];
  const shutdown = async (): Promise<void> => {
    await Promise.all(workers.map(stopLocalWorker));
    await server.close();
  };
  try {
    const plan = await planWorkerConfig({ backend: flags.backend as BackendName | undefined, configFile: flags.configFile, stateDir });
    const previous = readLocalSettings(stateDir);
    const demo = ensureDemoIdentity(server.store, previous);
    writeLocalSettings(stateDir, {
      server_url: server.localHttpUrl,
      user_key: demo.userKey,
      worker_key: demo.workerKey,
      user_worker_key: demo.userWorkerKey,
      user_id: demo.userId,
      team_id: demo.teamId,
    });
    const ozPath = await standInAgent(plan.backend, flags, plan.fileSetsOzPath);

    line(`Local dispatch server: ${server.httpUrl}  (state in ${stateDir})`);
    line(
      `${demo.created ? 'Created' : 'Using'} demo user "demo" (id ${demo.userId}) and team "demo-team" (id ${demo.teamId}); keys in ${join(stateDir, 'local.json')}`,
    );
    const specs: LocalWorkerSpec[] = [
      { workerId: TEAM_WORKER_ID, key: demo.workerKey, runs: `team demo-team (id ${demo.teamId})` },
      { workerId: USER_WORKER_ID, key: demo.userWorkerKey, runs: `user demo (id ${demo.userId})` },
    ];
    for (const spec of specs) line(`Starting worker "${spec.workerId}" for the tasks of ${spec.runs} (backend: ${plan.backend})...`);
    const launch = { server, stateDir, logLevel: flags.logLevel ?? 'info', configArgs: plan.args, ozPath, maxConcurrentTasks: flags.maxConcurrentTasks };
    for (const spec of specs) workers.push(startLocalWorker(spec, launch));
    await unlessStopped(waitForLocalWorkers(server, workers, signalled));
    line('Workers connected.');

    let exitCode = 0;
    if (flags.demo) {
      const client = new ApiClient(server.localHttpUrl, demo.userKey);
      const userDone = await unlessStopped(
        runDemoTask(client, 'Demo task owned by user demo (no team sharing)', { prompt: 'Say hello from the oz-worker local demo.' }),
      );
      const teamDone = await unlessStopped(
        runDemoTask(client, 'Demo task owned by team demo-team (the agent gets --share team:edit)', {
          prompt: 'Say hello to the team from the oz-worker local demo.',
          owner: { type: 'TEAM', id: demo.teamId },
        }),
      );
      exitCode = userDone && teamDone ? 0 : 1;
    }
    if (flags.once) {
      await shutdown();
      return exitCode;
    }
    line(
      [
        '',
        'Next:',
        `  ${commandHint('task submit "your prompt" --watch')}                      # owned by you, user demo: no team sharing`,
        `  ${commandHint(`task submit "your prompt" --team ${demo.teamId} --watch`)}             # owned by team demo-team: the agent gets --share team:edit`,
        `  ${commandHint('task list')}`,
        'Press Ctrl-C to stop the workers and the server.',
      ].join('\n'),
    );
  } catch (error) {
    await shutdown();
    if (error instanceof StopRequested) return 0;
    throw error;
  }
  const reason = await Promise.race([signalled, ...workers.map((w) => w.exited.then((code) => ({ worker: w, code })))]);
  if (typeof reason !== 'string') {
    line(`The worker "${reason.worker.spec.workerId}" exited (code ${reason.code}); stopping the other worker and the server.`);
    await shutdown();
    return 1;
  }
  await shutdown();
  return 0;
}
