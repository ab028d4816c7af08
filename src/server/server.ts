// The local dispatch server: database, queue, worker gateway and HTTP API on
// one loopback port. `startServer` returns once it listens; `close` stops it
// and leaves the database consistent for the next start.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { parseHostPort } from '../config/host-port.js';
import type { Logger } from '../log/logger.js';
import { openDatabase } from './database.js';
import { Dispatcher, type DispatcherTimings } from './dispatcher.js';
import { WorkerGateway, WORKER_SOCKET_PATH } from './gateway.js';
import { HttpApi } from './http-api.js';
import { advertisedHost, isLoopback, ListenAddressError, localHost, resolveListenHost, urlHost } from './listen-address.js';
import { acquireStateLock, inUseMessage, liveLockHolder, StateDirInUseError, type StateLock } from './state-lock.js';
import { Store } from './store.js';
import { TaskTelemetry } from './task-telemetry.js';

export interface ServerOptions {
  stateDir: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Required to listen on anything but a loopback address. */
  allowRemote?: boolean;
  log: Logger;
  timings?: Partial<DispatcherTimings>;
  /** Which command holds the state directory (named to a second server that finds it locked). */
  command?: string;
  /** Most tasks one user or team may have waiting; more are refused with 429. */
  maxQueuedPerPrincipal?: number;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:7317; for a wildcard listen address, an address of this machine others can reach. */
  httpUrl: string;
  /** What workers pass as --web-socket-url. */
  webSocketUrl: string;
  /** The same for clients on this machine (loopback when listening on a wildcard address). */
  localHttpUrl: string;
  localWebSocketUrl: string;
  store: Store;
  dispatcher: Dispatcher;
  adminKey: string;
  close(): Promise<void>;
}

export class ServerStartError extends Error {}

export { isLoopback } from './listen-address.js';

/** Parses `host:port`, `[v6]:port` or `:port`. */
export function parseListen(text: string): { host: string; port: number } {
  const parsed = parseHostPort(text);
  if (!parsed) throw new ServerStartError(`invalid --listen ${JSON.stringify(text)}: use host:port, e.g. 127.0.0.1:7317`);
  return parsed;
}

export const ADMIN_KEY_FILE = 'admin.key';
export const DATABASE_FILE = 'server.db';

/** The admin key: read from the state dir, or made (and written there, owner-only) on first start. */
function ensureAdminKey(store: Store, stateDir: string, log: Logger): string {
  const path = join(stateDir, ADMIN_KEY_FILE);
  if (existsSync(path)) {
    const key = readFileSync(path, 'utf8').trim();
    if (store.principal(key)?.kind === 'admin') {
      chmodSync(path, 0o600);
      return key;
    }
    log.warn(`${path} does not hold a valid admin key; creating a new one`);
  }
  const { key } = store.createKey({ kind: 'admin' }, 'admin');
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  // `mode` applies only to a new file; one left by an older version is tightened.
  chmodSync(path, 0o600);
  log.info(`Created the admin key in ${path}`);
  return key;
}

/**
 * Order matters: the host is resolved and the port bound before anything is
 * written, so a failed start leaves a new state directory untouched; then the
 * state directory is locked (one server per directory) and the database opened.
 */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { log, stateDir } = options;
  let addresses: string[];
  try {
    addresses = await resolveListenHost(options.host);
  } catch (error) {
    if (error instanceof ListenAddressError) throw new ServerStartError(error.message);
    throw error;
  }
  if (!options.allowRemote && !(isLoopback(options.host) || addresses.every(isLoopback))) {
    throw new ServerStartError(
      `refusing to listen on ${options.host}: the local server is meant for this machine; add --allow-remote to expose it (anyone who reaches it needs a key)`,
    );
  }
  const holder = liveLockHolder(stateDir);
  if (holder) throw new ServerStartError(inUseMessage(stateDir, holder));

  // Requests that arrive before the database is open wait for it.
  let ready!: (api: HttpApi) => void;
  const apiReady = new Promise<HttpApi>((resolve) => (ready = resolve));
  let gateway: WorkerGateway | undefined;
  let telemetry: TaskTelemetry | undefined;
  const http: Server = createServer(
    (request, response) => void apiReady.then((api) => (telemetry?.handles(request) ? telemetry.handle(request, response) : api.handle(request, response))),
  );
  http.on('upgrade', (request, socket, head) => {
    if (gateway) gateway.handleUpgrade(request, socket, head);
    else socket.destroy();
  });
  http.headersTimeout = 10_000;
  http.requestTimeout = 60_000;
  await listen(http, options.port, options.host);
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const closeHttp = (): Promise<void> =>
    new Promise<void>((resolve) => {
      http.close(() => resolve());
      http.closeAllConnections();
    });

  let lock: StateLock | undefined;
  let db: Awaited<ReturnType<typeof openDatabase>> | undefined;
  let store: Store;
  let adminKey: string;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    try {
      lock = acquireStateLock(stateDir, options.command ?? 'server');
    } catch (error) {
      if (error instanceof StateDirInUseError) throw new ServerStartError(error.message);
      throw error;
    }
    db = await openDatabase(join(stateDir, DATABASE_FILE));
    store = new Store(db);
    adminKey = ensureAdminKey(store, stateDir, log);
  } catch (error) {
    db?.close();
    lock?.release();
    await closeHttp();
    throw error;
  }
  const httpUrl = `http://${urlHost(advertisedHost(options.host))}:${port}`;
  // Task logs: assignments name this server as the collector; it serves the identity call and takes the exports.
  telemetry = new TaskTelemetry(adminKey, httpUrl, store, log.child({ component: 'telemetry' }));
  const dispatcher = new Dispatcher(store, log.child({ component: 'queue' }), options.timings, telemetry);
  telemetry.onRecorded = (taskId) => dispatcher.eventsAdded(taskId);
  gateway = new WorkerGateway(store, dispatcher, log.child({ component: 'gateway' }));
  const openGateway = gateway;
  ready(
    new HttpApi(store, dispatcher, log.child({ component: 'api' }), {
      onKeyRevoked: (keyId) => openGateway.closeConnectionsOfKey(keyId),
      onPrincipalRemoved: (principal) => openGateway.closeConnectionsOfPrincipal(principal),
      ...(options.maxQueuedPerPrincipal === undefined ? {} : { maxQueuedPerPrincipal: options.maxQueuedPerPrincipal }),
    }),
  );
  dispatcher.start();

  const localHttpUrl = `http://${urlHost(localHost(options.host))}:${port}`;
  lock.update({ url: localHttpUrl });
  log.info({ url: httpUrl }, 'Local dispatch server listening');

  let closing: Promise<void> | undefined;
  const heldLock = lock;
  return {
    httpUrl,
    webSocketUrl: `${httpUrl.replace(/^http/, 'ws')}${WORKER_SOCKET_PATH}`,
    localHttpUrl,
    localWebSocketUrl: `${localHttpUrl.replace(/^http/, 'ws')}${WORKER_SOCKET_PATH}`,
    store,
    dispatcher,
    adminKey,
    close: () =>
      (closing ??= (async () => {
        dispatcher.stop();
        openGateway.close();
        await closeHttp();
        store.close();
        heldLock.release();
      })()),
  };
}

function listen(http: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(
        new ServerStartError(
          error.code === 'EADDRINUSE'
            ? `port ${port} on ${host} is in use (another oz-worker server?); stop it or pick another with --listen ${urlHost(host)}:<port>`
            : error.code === 'EADDRNOTAVAIL'
              ? `cannot listen on ${host}: it is not an address of this machine; use one of its addresses, 127.0.0.1, or 0.0.0.0 with --allow-remote`
              : `cannot listen on ${host}:${port}: ${error.message}`,
        ),
      );
    };
    http.once('error', onError);
    http.listen(port, host, () => {
      http.off('error', onError);
      resolve();
    });
  });
}
