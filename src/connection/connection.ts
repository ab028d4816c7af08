// The one loop that owns the WebSocket to the dispatch server: dial, keep alive
// with pings, flush the outbox, hand frames to the worker, and on any failure
// tear down and dial again after a jittered backoff.
//
//   idle ─start→ connecting ─open→ open ─(close|error|pong timeout)→ waiting ─timer→ connecting
//   any ─stop→ stopped
import { WebSocket } from 'ws';
import type { Logger } from '../log/logger.js';
import { announcesTaskOutput, EXTENSIONS_HEADER } from '../protocol/task-output.js';
import { WORKER_VERSION_HEADER, workerVersionHeaderValue } from '../protocol/worker-version.js';
import { VERSION } from '../version.js';
import type { Outbox } from './outbox.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'stopped';

export interface ConnectionTimings {
  /** A ping is sent this often. */
  pingIntervalMs: number;
  /** The connection is declared dead when nothing (frame or pong) arrived for this long. */
  pongTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** A connection that stayed up this long resets the backoff. */
  stableAfterMs: number;
  backoff: BackoffPolicy;
}

export const DEFAULT_TIMINGS: ConnectionTimings = {
  pingIntervalMs: 30_000,
  pongTimeoutMs: 60_000,
  handshakeTimeoutMs: 45_000,
  stableAfterMs: 30_000,
  backoff: DEFAULT_BACKOFF,
};

export type ReconnectReason = 'dial_failed' | 'remote_close';

export interface ConnectionOptions {
  url: string;
  workerId: string;
  /** Device mode: sent as `device_id` next to `worker_id`. */
  deviceId?: string | undefined;
  apiKey: string;
  /** Sent as `X-Warp-Worker-Version` on every dial (default: this build's version). */
  workerVersion?: string;
  outbox: Outbox;
  log: Logger;
  onFrame: (text: string) => void;
  onStateChange?: (state: ConnectionState) => void;
  onReconnect?: (reason: ReconnectReason) => void;
  timings?: Partial<ConnectionTimings>;
  maxPayloadBytes?: number;
  /** An http.Agent for proxies or a private CA. */
  agent?: import('node:http').Agent | undefined;
  ca?: string | Buffer;
}

/** The dispatch URL with `worker_id` set (replacing any existing value). */
export function workerSocketUrl(url: string, workerId: string, deviceId?: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('worker_id', workerId);
  if (deviceId) parsed.searchParams.set('device_id', deviceId);
  return parsed.toString();
}

/** Bytes the socket may hold unsent before further statuses wait in the outbox. */
const WRITE_WINDOW_BYTES = 256 * 1024;

const AUTH_HINT =
  'the dispatch server refused the API key: check that WARP_API_KEY (or --api-key / --api-key-file) holds a current key for this worker and that it has not been revoked';

export class Connection {
  private state: ConnectionState = 'idle';
  private socket: WebSocket | undefined;
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private deadTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private readonly timings: ConnectionTimings;
  private readonly url: string;
  private readonly headers: Record<string, string>;
  private closed: Promise<void> = Promise.resolve();
  /** The server of the current socket announced the task-output extension (the local server does; Warp does not). */
  private taskOutput = false;

  constructor(private readonly options: ConnectionOptions) {
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.url = workerSocketUrl(options.url, options.workerId, options.deviceId);
    this.headers = { Authorization: `Bearer ${options.apiKey}` };
    const version = options.workerVersion ?? VERSION;
    const versionHeader = workerVersionHeaderValue(version);
    if (versionHeader !== undefined) this.headers[WORKER_VERSION_HEADER] = versionHeader;
    // The value itself is not logged: it is what could not be trusted on one line.
    else if (version !== '') options.log.warn('Omitting invalid worker version metadata from the connection');
  }

  get currentState(): ConnectionState {
    return this.state;
  }

  get acceptsTaskOutput(): boolean {
    return this.taskOutput && this.state === 'open';
  }

  /**
   * Writes a best-effort frame of an announced extension. Statuses come first:
   * while the socket holds a window of unsent bytes, the frame is not written (false).
   */
  sendExtensionFrame(text: string): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || this.state !== 'open' || socket.bufferedAmount >= WRITE_WINDOW_BYTES) return false;
    socket.send(text);
    return true;
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.options.outbox.setListener(() => this.flush());
    this.dial();
  }

  /** Closes with 1000 (normal closure) and stops reconnecting. */
  async stop(timeoutMs = 5_000): Promise<void> {
    if (this.state === 'stopped') return;
    const socket = this.socket;
    this.setState('stopped');
    clearTimeout(this.retryTimer);
    this.options.outbox.setListener(undefined);
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.close(1000);
      const forced = setTimeout(() => socket.terminate(), timeoutMs);
      await this.closed;
      clearTimeout(forced);
    } else {
      socket?.terminate();
    }
  }

  private setState(state: ConnectionState): void {
    if (this.state === state || this.state === 'stopped') return;
    this.state = state;
    this.options.onStateChange?.(state);
  }

  private dial(): void {
    if (this.state === 'stopped') return;
    this.setState('connecting');
    const { log } = this.options;
    const socket = new WebSocket(this.url, {
      headers: this.headers,
      handshakeTimeout: this.timings.handshakeTimeoutMs,
      maxPayload: this.options.maxPayloadBytes ?? 16 * 1024 * 1024,
      perMessageDeflate: false,
      agent: this.options.agent,
      ca: this.options.ca,
    });
    this.socket = socket;
    this.taskOutput = false;
    socket.on('upgrade', (response) => (this.taskOutput = announcesTaskOutput(response.headers[EXTENSIONS_HEADER])));
    let opened = false;
    let settle!: () => void;
    this.closed = new Promise((resolve) => (settle = resolve));

    // What went wrong before the socket opened: logged once, with the retry delay, when it closes.
    let dialFailure: { level: 'warn' | 'error'; status?: number; err?: string; text: string } | undefined;
    socket.on('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      dialFailure =
        status === 401 || status === 403
          ? { level: 'error', status, text: `WebSocket upgrade rejected with HTTP ${status}: ${AUTH_HINT}` }
          : { level: 'warn', status, text: `WebSocket upgrade rejected with HTTP ${status}` };
      response.resume();
      socket.terminate();
    });
    socket.on('open', () => {
      opened = true;
      log.info({ url: redactUrl(this.url) }, 'Connected to dispatch server');
      this.setState('open');
      this.armKeepAlive(socket);
      this.stableTimer = setTimeout(() => (this.attempt = 0), this.timings.stableAfterMs);
      this.flush();
    });
    socket.on('message', (data, isBinary) => {
      this.deadTimer?.refresh();
      if (isBinary) {
        log.warn('Ignoring a binary frame: the protocol only uses text frames');
        return;
      }
      this.options.onFrame(data.toString());
    });
    socket.on('pong', () => this.deadTimer?.refresh());
    socket.on('error', (error) => {
      // After a rejected upgrade, ws also reports the terminate() as "closed before the connection was established".
      if (!opened) dialFailure ??= { level: 'warn', err: error.message, text: `Failed to connect to dispatch server: ${error.message}` };
      else log.warn({ err: error.message }, `WebSocket error: ${error.message}`);
    });
    socket.on('close', (code, reason) => {
      this.clearKeepAlive();
      this.options.outbox.requeueInFlight();
      if (this.socket === socket) this.socket = undefined;
      settle();
      if (this.state === 'stopped') return;
      const delay = this.scheduleRetry();
      if (opened) {
        log.warn({ code, reason: reason.toString(), retryInMs: delay }, `Connection to dispatch server closed; reconnecting in ${describeDelay(delay)}`);
        this.options.onReconnect?.('remote_close');
      } else {
        const failure = dialFailure ?? { level: 'warn', text: 'Failed to connect to dispatch server' };
        const fields = {
          ...(failure.status ? { status: failure.status } : {}),
          ...(failure.err ? { err: failure.err } : {}),
          attempt: this.attempt,
          retryInMs: delay,
        };
        log[failure.level](fields, `${failure.text}; retrying in ${describeDelay(delay)}`);
        this.options.onReconnect?.('dial_failed');
      }
    });
  }

  /** Arms the next dial after the backoff; returns the delay. */
  private scheduleRetry(): number {
    const delay = backoffDelay(this.attempt, this.timings.backoff);
    this.attempt++;
    this.setState('waiting');
    this.retryTimer = setTimeout(() => this.dial(), delay);
    return delay;
  }

  private armKeepAlive(socket: WebSocket): void {
    this.pingTimer = setInterval(() => socket.ping(), this.timings.pingIntervalMs);
    this.deadTimer = setTimeout(() => {
      this.options.log.warn({ timeoutMs: this.timings.pongTimeoutMs }, 'No pong or frame from the dispatch server in time; treating the connection as dead');
      socket.terminate();
    }, this.timings.pongTimeoutMs);
  }

  private clearKeepAlive(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.deadTimer);
    clearTimeout(this.stableTimer);
    this.deadTimer = undefined;
  }

  /**
   * Writes what is waiting in the outbox while the socket keeps up: once its
   * buffer holds WRITE_WINDOW_BYTES the rest stays queued, and each completed
   * write pulls more. Unconfirmed writes return to the outbox on close.
   */
  private flush(): void {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || this.state !== 'open') return;
    const { outbox } = this.options;
    while (socket.bufferedAmount < WRITE_WINDOW_BYTES) {
      const entry = outbox.takeNext();
      if (!entry) return;
      socket.send(JSON.stringify(entry.message), (error) => {
        if (error) return;
        outbox.delivered(entry.seq);
        if (this.socket === socket) this.flush();
      });
    }
  }
}

/** "0.2 s" under ten seconds, whole seconds above. */
export function describeDelay(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

function redactUrl(url: string): string {
  const parsed = new URL(url);
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}
