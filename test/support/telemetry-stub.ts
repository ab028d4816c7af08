// A stand-in for the server's identity-token call and the log collector, on one
// loopback port: `POST /graphql/v2` issues tokens, `POST /otlp/v1/logs` takes
// OTLP/HTTP protobuf (decoded with the local server's own decoder). Each can be
// told to refuse, stall or redirect.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeLogsRequest, type OtlpLogRecord } from '../../src/server/otlp-logs.js';

export interface IdentityCall {
  headers: IncomingHttpHeaders;
  body: { query?: string; variables?: unknown };
}

export interface CollectorCall {
  headers: IncomingHttpHeaders;
  records: OtlpLogRecord[];
  bytes: number;
}

export type IdentityMode = 'ok' | 'reject' | 'stall' | { status: number; body: string } | { redirect: string; status: number };
export type CollectorMode = 'ok' | 'stall' | 'hold' | 'echo-403' | 'dead' | { redirect: string; status: number };

export class TelemetryStub {
  readonly identityCalls: IdentityCall[] = [];
  readonly collectorCalls: CollectorCall[] = [];
  identityMode: IdentityMode = 'ok';
  collectorMode: CollectorMode = 'ok';
  /** Seconds until an issued token expires. */
  tokenLifetimeSeconds = 3600;
  private issued = 0;
  private readonly stalled: ServerResponse[] = [];
  private readonly held: ServerResponse[] = [];
  /** Requests to paths other than the two above (redirect targets). */
  readonly otherCalls: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<TelemetryStub> {
    let stub!: TelemetryStub;
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => stub.handle(request.method ?? '', request.url ?? '', request.headers, Buffer.concat(chunks), response));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    stub = new TelemetryStub(server, `http://127.0.0.1:${port}`);
    return stub;
  }

  /** What the assignment's `telemetry_collection.endpoint` says. */
  get endpoint(): string {
    return `${this.url}/otlp`;
  }

  get records(): OtlpLogRecord[] {
    return this.collectorCalls.flatMap((call) => call.records);
  }

  bodies(source?: string): string[] {
    return this.records.filter((r) => source === undefined || r.attributes['log.source'] === source).map((r) => String(r.body));
  }

  /** Everything the collector received, as text (for "the secret appears nowhere" checks). */
  allText(): string {
    return JSON.stringify(this.collectorCalls.map((c) => ({ headers: c.headers, records: c.records })));
  }

  private handle(method: string, url: string, headers: IncomingHttpHeaders, body: Buffer, response: ServerResponse): void {
    if (method === 'POST' && url === '/graphql/v2') {
      const mode = this.identityMode;
      if (typeof mode === 'object' && 'redirect' in mode) {
        response.writeHead(mode.status, { Location: mode.redirect }).end();
        return;
      }
      this.serveIdentity(headers, body, response);
      return;
    }
    if (method === 'POST' && url === '/otlp/v1/logs') {
      const mode = this.collectorMode;
      if (typeof mode === 'object') {
        response.writeHead(mode.status, { Location: mode.redirect }).end();
        return;
      }
      this.serveCollector(headers, body, response);
      return;
    }
    this.otherCalls.push({ method, url, headers });
    if (method === 'POST' && url === '/identity') this.serveIdentity(headers, body, response);
    else if (method === 'POST' && url === '/logs') this.serveCollector(headers, body, response);
    else response.writeHead(404).end();
  }

  private serveIdentity(headers: IncomingHttpHeaders, body: Buffer, response: ServerResponse): void {
    this.identityCalls.push({ headers, body: JSON.parse(body.toString('utf8') || '{}') as IdentityCall['body'] });
    const mode = this.identityMode;
    if (mode === 'stall') {
      this.stalled.push(response);
      return;
    }
    if (mode === 'reject') {
      response.writeHead(403, { 'Content-Type': 'application/json' }).end('{"errors":[{"message":"private credential rejected"}]}');
      return;
    }
    if (typeof mode === 'object' && 'body' in mode) {
      response.writeHead(mode.status, { 'Content-Type': 'application/json' }).end(mode.body);
      return;
    }
    this.issued++;
    const expiresAt = new Date(Date.now() + this.tokenLifetimeSeconds * 1000).toISOString();
    response
      .writeHead(200, { 'Content-Type': 'application/json' })
      .end(JSON.stringify({ data: { issueTaskIdentityToken: { __typename: 'IssueTaskIdentityTokenOutput', token: `issued-${this.issued}`, expiresAt } } }));
  }

  private serveCollector(headers: IncomingHttpHeaders, body: Buffer, response: ServerResponse): void {
    const mode = this.collectorMode;
    if (mode === 'dead') {
      response.socket?.destroy();
      return;
    }
    if (mode === 'stall') {
      this.stalled.push(response);
      return;
    }
    this.collectorCalls.push({ headers, records: decodeLogsRequest(body), bytes: body.length });
    if (mode === 'hold') {
      this.held.push(response);
      return;
    }
    if (mode === 'echo-403') {
      response.writeHead(403, { 'Content-Type': 'text/plain' }).end(`denied: ${headers.authorization ?? ''}`);
      return;
    }
    response.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
  }

  /** Answers the held collector calls and takes the next ones at once. */
  release(): void {
    this.collectorMode = 'ok';
    for (const response of this.held.splice(0)) response.writeHead(200).end();
  }

  async close(): Promise<void> {
    for (const response of this.stalled) response.socket?.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
