// An in-repo dispatch server for tests: a real `ws` server on 127.0.0.1:0 that
// records what workers send and lets a test script what they receive.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface ReceivedMessage {
  type: string;
  data: Record<string, unknown>;
}

export interface Handshake {
  authorization: string | undefined;
  workerId: string | null;
  url: string;
  /** The raw `X-Warp-Worker-Version` header (UTF-8 bytes as latin1), if sent. */
  workerVersion: string | undefined;
}

export class FakeDispatchServer {
  readonly received: ReceivedMessage[] = [];
  readonly handshakes: Handshake[] = [];
  readonly rawFrames: string[] = [];
  pings = 0;
  private sockets = new Set<WebSocket>();
  private waiters: Array<() => void> = [];
  /** HTTP status to answer upgrades with instead of accepting (e.g. 401, 503). */
  refuseWith: number | undefined;
  /** Whether to answer pings (turn off to simulate a dead peer). */
  autoPong = true;

  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    readonly port: number,
    readonly apiKey: string | undefined,
  ) {}

  static async start(options: { apiKey?: string } = {}): Promise<FakeDispatchServer> {
    const http = createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ noServer: true, autoPong: false });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const server = new FakeDispatchServer(http, wss, port, options.apiKey);
    http.on('upgrade', (req, socket, head) => server.onUpgrade(req, socket as import('node:net').Socket, head));
    return server;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/api/v1/selfhosted/worker/ws`;
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  private onUpgrade(req: IncomingMessage, socket: import('node:net').Socket, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const workerVersion = req.headers['x-warp-worker-version'];
    this.handshakes.push({
      authorization: req.headers.authorization,
      workerId: url.searchParams.get('worker_id'),
      url: req.url ?? '',
      workerVersion: typeof workerVersion === 'string' ? workerVersion : undefined,
    });
    const status = this.refuseWith ?? (this.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.apiKey}` ? 401 : undefined);
    if (status !== undefined) {
      socket.on('error', () => socket.destroy()); // a worker killed mid-refusal resets the socket
      socket.end(`HTTP/1.1 ${status} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      this.notify();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      ws.on('ping', (data) => {
        this.pings++;
        if (this.autoPong) ws.pong(data);
      });
      ws.on('message', (data) => {
        const text = data.toString();
        this.rawFrames.push(text);
        try {
          this.received.push(JSON.parse(text) as ReceivedMessage);
        } catch {
          this.received.push({ type: '<unparseable>', data: { text } });
        }
        this.notify();
      });
      ws.on('close', () => {
        this.sockets.delete(ws);
        this.notify();
      });
      this.notify();
    });
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits until `check` returns a value other than undefined/false. */
  async until<T>(check: () => T | undefined | false, timeoutMs = 15_000, what = 'condition'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined && value !== false) return value;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new Error(`timed out waiting for ${what}; received: ${JSON.stringify(this.received.slice(-10))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(remaining, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** A worker starting on a loaded machine (CI runs suites side by side) may take a while to dial. */
  waitForConnection(count = 1, timeoutMs = 30_000): Promise<true> {
    return this.until(() => this.sockets.size >= count, timeoutMs, `${count} connection(s)`);
  }

  /** Waits for a message of `type` for `taskId` and returns it. */
  waitForMessage(type: string, taskId?: string, timeoutMs?: number): Promise<ReceivedMessage> {
    return this.until(
      () => this.received.find((m) => m.type === type && (taskId === undefined || m.data.task_id === taskId)),
      timeoutMs,
      `${type}${taskId ? ` for ${taskId}` : ''}`,
    );
  }

  messagesFor(taskId: string): ReceivedMessage[] {
    return this.received.filter((m) => m.data.task_id === taskId);
  }

  /** Sends an object (as JSON) or a raw string to every connected worker. */
  send(message: unknown): void {
    const text = typeof message === 'string' ? message : JSON.stringify(message);
    for (const ws of this.sockets) ws.send(text);
  }

  assign(data: Record<string, unknown>): void {
    this.send({ type: 'task_assignment', data });
  }

  cancel(taskId: string): void {
    this.send({ type: 'task_cancellation', data: { task_id: taskId } });
  }

  /** Cuts every connection abruptly (no close frame). */
  dropConnections(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  /** The server side of every open connection (for per-connection scripting: close codes, raw sends). */
  get openSockets(): WebSocket[] {
    return [...this.sockets];
  }

  /**
   * Ends every connection with a TCP FIN and no WebSocket close handshake, yet
   * still reads what the worker had already written (unlike dropConnections,
   * whose reset discards bytes not yet read). The worker sees an abnormal
   * closure (1006); no message is lost in the network, so any loss is the worker's.
   */
  cutConnections(): void {
    for (const ws of this.sockets) {
      this.sockets.delete(ws);
      (ws as unknown as { _socket: import('node:net').Socket })._socket.end();
    }
  }

  /** Closes every connection with a close frame (default 1012, service restart). */
  closeConnections(code = 1012, reason = 'service restart'): void {
    for (const ws of this.sockets) {
      this.sockets.delete(ws);
      ws.close(code, reason);
    }
  }

  /** Stops reading from every open connection (a slow consumer: the worker's writes back up). */
  pauseReading(): void {
    for (const ws of this.sockets) ws.pause();
  }

  /** Resumes reading on every open connection. */
  resumeReading(): void {
    for (const ws of this.sockets) ws.resume();
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

/** A minimal valid assignment; override any field. */
export function assignment(taskId: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { task, ...rest } = overrides as { task?: Record<string, unknown> };
  return {
    task_id: taskId,
    execution_id: `exec-${taskId}`,
    task: { id: taskId, title: `test ${taskId}`, task_definition: { prompt: 'do it' }, ...task },
    ...rest,
  };
}
