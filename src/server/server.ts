// The local dispatch server: database, queue, worker gateway and HTTP API on
// one loopback port. `startServer` returns once it listens; `close` stops it
// and leaves the database consistent for the next start.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parseHostPort } from '../config/host-port.js';
import type { Logger } from '../log/logger.js';
import { openDatabase } from './database.js';
import { Dispatcher, type DispatcherTimings } from './dispatcher.js';
import { WorkerGateway, WORKER_SOCKET_PATH } from './gateway.js';
import { HttpApi } from './http-api.js';
import { Store } from './store.js';

export interface ServerOptions {
  stateDir: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Required to listen on anything but a loopback address. */
  allowRemote?: boolean;
  log: Logger;
  timings?: Partial<DispatcherTimings>;
  /** Most tasks one user or team may have waiting; more are refused with 429. */
  maxQueuedPerPrincipal?: number;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:7317 */
  httpUrl: string;
  /** What workers pass as --web-socket-url. */
  webSocketUrl: string;
  store: Store;
  dispatcher: Dispatcher;
  adminKey: string;
  close(): Promise<void>;
}

export class ServerStartError extends Error {}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1';
  return false;
}

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

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { log } = options;
  if (!isLoopback(options.host) && !options.allowRemote) {
    throw new ServerStartError(
      `refusing to listen on ${options.host}: the local server is meant for this machine; add --allow-remote to expose it (anyone who reaches it needs a key)`,
    );
  }
  const db = await openDatabase(join(options.stateDir, DATABASE_FILE));
  const store = new Store(db);
  const adminKey = ensureAdminKey(store, options.stateDir, log);
  const dispatcher = new Dispatcher(store, log.child({ component: 'queue' }), options.timings);
  const gateway = new WorkerGateway(store, dispatcher, log.child({ component: 'gateway' }));
  const api = new HttpApi(store, dispatcher, log.child({ component: 'api' }), {
    onKeyRevoked: (keyId) => gateway.closeConnectionsOfKey(keyId),
    ...(options.maxQueuedPerPrincipal === undefined ? {} : { maxQueuedPerPrincipal: options.maxQueuedPerPrincipal }),
  });

  const http: Server = createServer((request, response) => void api.handle(request, response));
  http.on('upgrade', (request, socket, head) => gateway.handleUpgrade(request, socket, head));
  http.headersTimeout = 10_000;
  http.requestTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      db.close();
      reject(
        new ServerStartError(
          error.code === 'EADDRINUSE'
            ? `port ${options.port} on ${options.host} is in use (another oz-worker server?); stop it or pick another with --listen ${options.host}:<port>`
            : `cannot listen on ${options.host}:${options.port}: ${error.message}`,
        ),
      );
    };
    http.once('error', onError);
    http.listen(options.port, options.host, () => {
      http.off('error', onError);
      resolve();
    });
  });
  dispatcher.start();

  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const hostForUrl = options.host.includes(':') ? `[${options.host}]` : options.host;
  const httpUrl = `http://${hostForUrl}:${port}`;
  log.info({ url: httpUrl }, 'Local dispatch server listening');

  let closing: Promise<void> | undefined;
  return {
    httpUrl,
    webSocketUrl: `ws://${hostForUrl}:${port}${WORKER_SOCKET_PATH}`,
    store,
    dispatcher,
    adminKey,
    close: () =>
      (closing ??= (async () => {
        dispatcher.stop();
        gateway.close();
        await new Promise<void>((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections();
        });
        store.close();
      })()),
  };
}
