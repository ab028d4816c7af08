// A stand-in for the server's run client-events endpoint on loopback: records
// every request, and answers as told — at once (204), with a 500, or never
// (the request hangs until the stub closes).
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ClientEventRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: {
    event_uuid: string;
    event_name: string;
    timestamp: string;
    payload: { start_ts: string; finish_ts: string; latency_ms: number; is_error: boolean };
  };
  /** Whether the stub answered it (false while it hangs). */
  answered: boolean;
}

export type StubMode = 'ok' | 'fail' | 'hang';

export class ClientEventsStub {
  readonly requests: ClientEventRequest[] = [];
  private readonly held: ServerResponse[] = [];
  private waiters: Array<() => void> = [];

  private constructor(
    private readonly server: ReturnType<typeof createServer>,
    public mode: StubMode,
  ) {}

  static async start(mode: StubMode = 'ok'): Promise<ClientEventsStub> {
    const server = createServer();
    const stub = new ClientEventsStub(server, mode);
    server.on('request', (req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        const request: ClientEventRequest = {
          method: req.method ?? '',
          path: req.url ?? '',
          headers: req.headers,
          body: JSON.parse(text) as ClientEventRequest['body'],
          answered: false,
        };
        stub.requests.push(request);
        if (stub.mode === 'hang') stub.held.push(res);
        else {
          request.answered = true;
          if (stub.mode === 'fail') res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error: the events store is down');
          else res.writeHead(204).end();
        }
        for (const wake of stub.waiters.splice(0)) wake();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return stub;
  }

  /** What the worker takes as `--server-root-url`. */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The requests about one task (by the path's run id). */
  of(taskId: string): ClientEventRequest[] {
    return this.requests.filter((r) => r.path === `/api/v1/agent/runs/${encodeURIComponent(taskId)}/client-events`);
  }

  /** Resolves once `count` requests about the task arrived. */
  async waitFor(taskId: string, count: number, timeoutMs = 15_000): Promise<ClientEventRequest[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.of(taskId).length < count) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`timed out waiting for ${count} client events of ${taskId}; got ${JSON.stringify(this.of(taskId).map((r) => r.body.event_name))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.of(taskId);
  }

  async close(): Promise<void> {
    for (const res of this.held.splice(0)) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A server root where nothing listens (connection refused). */
export async function absentServerRoot(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
