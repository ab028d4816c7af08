// The worker side of the local server: the WebSocket endpoint workers connect
// to, exactly as they connect to Warp (`Authorization: Bearer <key>`,
// `?worker_id=`; `device_id` optional). Upgrades are authenticated before the
// handshake completes, so a bad key gets a plain HTTP 401/403 the worker can report.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { describeZodIssues } from '../errors/zod-issues.js';
import type { Logger } from '../log/logger.js';
import { OutboundMessageSchema } from '../protocol/messages.js';
import { EXTENSIONS_HEADER, TASK_OUTPUT_EXTENSION, TASK_OUTPUT_TYPE, TaskOutputFrameSchema } from '../protocol/task-output.js';
import { announcedWorkerVersion, WORKER_VERSION_HEADER } from '../protocol/worker-version.js';
import { principalTag, type WorkerIdentity } from './access.js';
import { bearerToken } from './credentials.js';
import type { Dispatcher, WorkerSession } from './dispatcher.js';
import type { Store } from './store.js';

export const WORKER_SOCKET_PATH = '/api/v1/selfhosted/worker/ws';
/** Frames from workers are small status messages; anything larger is refused. */
export const MAX_WORKER_FRAME_BYTES = 1024 * 1024;
const PING_INTERVAL_MS = 30_000;

/** Close code when the key a connection authenticated with is revoked. */
export const CLOSE_KEY_REVOKED = 4001;

type Refusal = { status: number; message: string; code?: string };

const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict' };

function refuse(socket: Duplex, { status, message, code }: Refusal): void {
  const body = JSON.stringify({ error: message, code: code ?? (status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'bad_request') });
  const reason = REASONS[status] ?? 'Bad Request';
  // After an upgrade the HTTP server no longer listens for socket errors: a
  // client that resets while reading the refusal must not crash the server.
  socket.on('error', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Who is connecting, or why not. Pure apart from the store lookups. */
export interface AuthenticatedWorker {
  workerId: string;
  identity: WorkerIdentity;
  /** The key it connected with: revoking it ends the connection. */
  keyId: number;
}

export function authenticateWorker(request: Pick<IncomingMessage, 'url' | 'headers'>, store: Store): AuthenticatedWorker | Refusal {
  const url = new URL(request.url ?? '/', 'http://localhost');
  if (url.pathname !== WORKER_SOCKET_PATH) return { status: 404, message: `no WebSocket endpoint here; workers connect to ${WORKER_SOCKET_PATH}` };
  const workerId = url.searchParams.get('worker_id') ?? '';
  if (workerId === '') return { status: 400, message: 'worker_id query parameter is missing; pass --worker-id to the worker' };
  const key = bearerToken(request.headers.authorization);
  if (!key) return { status: 401, message: 'missing API key: send "Authorization: Bearer <key>" (the worker\'s --api-key)' };
  const principal = store.principal(key);
  if (!principal) return { status: 401, message: 'unknown or revoked API key' };
  const deviceId = url.searchParams.get('device_id') || undefined;
  if (principal.kind === 'team') {
    if (deviceId) return { status: 403, message: "a team key runs a fleet worker; a device worker connects with its owner's user key" };
    return { workerId, identity: { kind: 'team', teamId: principal.teamId }, keyId: principal.keyId };
  }
  if (principal.kind === 'user') {
    if (deviceId) {
      const device = store.device(deviceId);
      if (!device || device.userId !== principal.userId) return { status: 403, message: `device ${deviceId} is not registered to this key's user` };
    }
    return { workerId, identity: { kind: 'user', userId: principal.userId, deviceId }, keyId: principal.keyId };
  }
  return { status: 403, message: `a ${principal.kind} key cannot run a worker; use a team key (fleet worker) or a user key (device worker)` };
}

/**
 * A worker id belongs to the user or team that first connected with it; another
 * principal is refused (409) and the holder's connection stays. The same
 * principal (any of its keys) reconnecting replaces its old connection: a restart.
 */
export function claimWorkerId(worker: AuthenticatedWorker, store: Pick<Store, 'bindWorkerId'>): Refusal | undefined {
  const principal = principalTag(worker.identity)!;
  const holder = store.bindWorkerId(worker.workerId, principal);
  if (holder === principal) return undefined;
  return {
    status: 409,
    code: 'worker_id_taken',
    message: `worker_id ${JSON.stringify(worker.workerId)} belongs to another user or team; pick another --worker-id`,
  };
}

class SocketSession implements WorkerSession {
  constructor(
    readonly workerId: string,
    readonly identity: WorkerIdentity,
    readonly keyId: number,
    readonly version: string | undefined,
    private readonly socket: WebSocket,
  ) {}

  send(frame: object): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  close(code: number, reason: string): void {
    this.socket.close(code, reason);
  }
}

export class WorkerGateway {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WORKER_FRAME_BYTES });
  private readonly sessions = new Map<string, SocketSession>();

  constructor(
    private readonly store: Store,
    private readonly dispatcher: Dispatcher,
    private readonly log: Logger,
  ) {
    // The upgrade response announces the protocol extensions this server takes.
    this.wss.on('headers', (headers) => headers.push(`${EXTENSIONS_HEADER}: ${TASK_OUTPUT_EXTENSION}`));
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const auth = authenticateWorker(request, this.store);
    const refusal = 'status' in auth ? auth : claimWorkerId(auth, this.store);
    if (refusal) {
      this.log.warn({ status: refusal.status }, `Refused a worker connection: ${refusal.message}`);
      refuse(socket, refusal);
      return;
    }
    const worker = auth as AuthenticatedWorker;
    const header = request.headers[WORKER_VERSION_HEADER.toLowerCase()];
    const version = announcedWorkerVersion(header);
    // Kept out of the log: a value that failed the check is not fit to print.
    if (header !== undefined && version === undefined) this.log.warn({ workerId: worker.workerId }, `Ignored an invalid ${WORKER_VERSION_HEADER} header`);
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, worker, version));
  }

  /** Ends, at once, every connection made with the key (it was revoked). */
  closeConnectionsOfKey(keyId: number): void {
    for (const session of this.sessions.values()) {
      if (session.keyId !== keyId) continue;
      this.log.info({ workerId: session.workerId }, 'Closing a worker connection: its key was revoked');
      session.close(CLOSE_KEY_REVOKED, 'the API key of this connection was revoked');
    }
  }

  /** Ends every connection of a user or team that was removed (its keys went with it). */
  closeConnectionsOfPrincipal(principal: string): void {
    for (const session of this.sessions.values()) {
      if (principalTag(session.identity) !== principal) continue;
      this.log.info({ workerId: session.workerId }, 'Closing a worker connection: its user or team was removed');
      session.close(CLOSE_KEY_REVOKED, 'the user or team of this connection was removed');
    }
  }

  private accept(ws: WebSocket, { workerId, identity, keyId }: AuthenticatedWorker, version: string | undefined): void {
    const session = new SocketSession(workerId, identity, keyId, version, ws);
    const previous = this.sessions.get(workerId);
    if (previous) {
      // The same worker id reconnecting: the new connection wins.
      this.dispatcher.disconnect(previous);
      previous.close(4000, 'replaced by a newer connection with the same worker_id');
    }
    this.sessions.set(workerId, session);
    const log = this.log.child({ workerId });
    log.info({ identity, version }, 'Worker connected');

    let alive = true;
    ws.on('pong', () => (alive = true));
    const ping = setInterval(() => {
      if (!alive) {
        ws.terminate();
        return;
      }
      alive = false;
      ws.ping();
    }, PING_INTERVAL_MS);
    ping.unref();

    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        log.warn('Ignored a binary frame from a worker');
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(data.toString());
      } catch {
        log.warn('Ignored a frame that is not JSON');
        return;
      }
      if (this.handleExtensionFrame(session, parsed, log)) return;
      let message = OutboundMessageSchema.safeParse(parsed);
      if (!message.success && message.error.issues.every((issue) => issue.path[0] === 'data' && issue.path[1] === 'failure_details')) {
        // Details this server cannot read must not keep the failure itself from ending the task.
        log.warn({ problem: describeZodIssues(message.error.issues) }, "Ignored the failure details of a worker's task_failed; the failure itself is kept");
        const { failure_details: _, ...data } = (parsed as { data: Record<string, unknown> }).data;
        message = OutboundMessageSchema.safeParse({ ...(parsed as object), data });
      }
      if (!message.success) {
        log.warn({ problem: describeZodIssues(message.error.issues) }, 'Ignored an invalid frame from a worker');
        return;
      }
      this.dispatcher.handle(session, message.data);
    });
    ws.on('close', (code) => {
      clearInterval(ping);
      if (this.sessions.get(workerId) === session) this.sessions.delete(workerId);
      log.info({ code }, 'Worker disconnected');
      this.dispatcher.disconnect(session);
    });
    ws.on('error', (error) => log.warn({ err: error.message }, 'Worker connection error'));
    this.dispatcher.connect(session);
  }

  /** A frame of an announced extension (task output); false for anything else. */
  private handleExtensionFrame(session: SocketSession, parsed: unknown, log: Logger): boolean {
    if ((parsed as { type?: unknown } | null)?.type !== TASK_OUTPUT_TYPE) return false;
    const frame = TaskOutputFrameSchema.safeParse(parsed);
    if (frame.success) this.dispatcher.handleOutput(session, frame.data.data);
    else log.warn({ problem: describeZodIssues(frame.error.issues) }, 'Ignored an invalid task_output frame');
    return true;
  }

  /** Closes every worker connection (code 1001: the server is going away). */
  close(): void {
    for (const session of this.sessions.values()) session.close(1001, 'server shutting down');
    this.wss.close();
  }
}
