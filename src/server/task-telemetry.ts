// The local server's side of task logs: what an assignment carries (a workload
// token next to the per-task key, `telemetry_collection` pointing at this
// server), the identity-token call a worker makes for a task
// (`POST /graphql/v2`, mutation `issueTaskIdentityToken`) and the OTLP/HTTP logs
// endpoint its exports reach (`POST /otlp/v1/logs`). Tokens are stateless: an
// HMAC under a secret derived from the admin key, so they outlive a restart of
// the server (a worker reuses its identity token for hours) and need no table.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.js';
import { errorMessage } from '../errors/error-message.js';
import { bearerToken } from './credentials.js';
import type { Store } from './store.js';

/** Where workers send a task's logs, under the server's URL; the collector path is `{endpoint}/v1/logs`. */
export const OTLP_ENDPOINT_PATH = '/otlp';
export const LOGS_PATH = `${OTLP_ENDPOINT_PATH}/v1/logs`;
export const IDENTITY_PATH = '/graphql/v2';
export const IDENTITY_AUDIENCE = 'warp-cloud-agent-otel';
/** Longest identity token the server issues (what the Go worker asks for: 3 h). */
export const MAX_IDENTITY_SECONDS = 3 * 60 * 60;
const MIN_IDENTITY_SECONDS = 60;
export const MAX_IDENTITY_BODY_BYTES = 64 * 1024;
/** A batch is at most 128 records of 16 KiB bodies; this leaves room for attributes. */
export const MAX_LOGS_BODY_BYTES = 4 * 1024 * 1024;
/** Exported records kept per task (then one `logs_truncated` event), as for the task-output lines. */
export const MAX_STORED_LOG_BYTES = 1024 * 1024;
export const LOG_EVENT_KIND = 'log';
export const LOGS_TRUNCATED_KIND = 'logs_truncated';

const WORKLOAD_PREFIX = 'ozw_';
const IDENTITY_PREFIX = 'ozi_';

/** What a task's assignment carries for its logs. */
export interface TaskTelemetryFields {
  workloadToken: string;
  telemetryCollection: { endpoint: string; tracing_enabled: false; logging_enabled: true };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class TaskTelemetry {
  private readonly secret: Buffer;
  /** Exported bytes kept per task, learned from the store the first time a task exports. */
  private readonly kept = new Map<string, number>();

  constructor(
    adminKey: string,
    private readonly httpUrl: string,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    this.secret = createHmac('sha256', adminKey).update('oz-worker local server: task telemetry tokens').digest();
  }

  private mac(text: string): string {
    return createHmac('sha256', this.secret).update(text).digest('base64url');
  }

  /** The fields of an assignment sent with `taskKey`. */
  fieldsFor(taskKey: string): TaskTelemetryFields {
    return {
      workloadToken: `${WORKLOAD_PREFIX}${this.mac(`workload\0${taskKey}`)}`,
      telemetryCollection: { endpoint: `${this.httpUrl}${OTLP_ENDPOINT_PATH}`, tracing_enabled: false, logging_enabled: true },
    };
  }

  issueIdentityToken(taskId: string, seconds: number, now = Date.now()): { token: string; expiresAt: string } {
    const expiresAt = Math.floor(now / 1000) + Math.min(MAX_IDENTITY_SECONDS, Math.max(MIN_IDENTITY_SECONDS, Math.floor(seconds)));
    const payload = Buffer.from(JSON.stringify({ t: taskId, e: expiresAt })).toString('base64url');
    return {
      token: `${IDENTITY_PREFIX}${payload}.${this.mac(`identity\0${payload}`)}`,
      expiresAt: new Date(expiresAt * 1000).toISOString().replace('.000Z', 'Z'),
    };
  }

  /** The task an unexpired identity token was issued for. */
  identityTask(token: string, now = Date.now()): string | undefined {
    const match = /^ozi_([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(token);
    if (!match || !sameText(match[2]!, this.mac(`identity\0${match[1]}`))) return undefined;
    try {
      const { t, e } = JSON.parse(Buffer.from(match[1]!, 'base64url').toString('utf8')) as { t?: unknown; e?: unknown };
      return typeof t === 'string' && typeof e === 'number' && e * 1000 > now ? t : undefined;
    } catch {
      return undefined;
    }
  }

  /** Whether this request is one of the two routes served here. */
  handles(request: IncomingMessage): boolean {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    return path === IDENTITY_PATH || path === LOGS_PATH;
  }

  async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    try {
      if (request.method !== 'POST') throw new HttpError(405, `use POST on ${path}`);
      if (path === IDENTITY_PATH) await this.identity(request, response);
      else await this.logs(request, response);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      if (!(error instanceof HttpError)) this.log.error({ err: errorMessage(error) }, 'Task telemetry request failed');
      const message = error instanceof HttpError ? error.message : 'internal server error; see the server log';
      const body = path === IDENTITY_PATH ? JSON.stringify({ errors: [{ message }] }) : JSON.stringify({ error: message });
      if (!response.headersSent) response.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      response.end(body);
    }
  }

  /** `issueTaskIdentityToken`: the task's own key, its workload token, and its id must agree. */
  private async identity(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const key = bearerToken(request.headers.authorization);
    const principal = key === undefined ? undefined : this.store.principal(key);
    if (!key || principal?.kind !== 'task') throw new HttpError(401, 'missing or unknown task key: send "Authorization: Bearer <WARP_API_KEY of the task>"');
    const workload = String(request.headers['x-warp-ambient-workload-token'] ?? '');
    if (!sameText(workload, this.fieldsFor(key).workloadToken)) throw new HttpError(403, 'the workload token does not belong to this task key');
    if (request.headers['x-warp-cloud-agent-id'] !== principal.taskId) throw new HttpError(403, 'X-Warp-Cloud-Agent-ID does not name the task of this key');
    const body = await readBody(request, MAX_IDENTITY_BODY_BYTES);
    let parsed: { query?: unknown; variables?: { input?: { audience?: unknown; requestedDurationSeconds?: unknown } } };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new HttpError(400, 'the request body is not JSON');
    }
    if (typeof parsed?.query !== 'string' || !parsed.query.includes('issueTaskIdentityToken'))
      throw new HttpError(400, 'only the issueTaskIdentityToken mutation is served here');
    const input = parsed.variables?.input;
    if (input?.audience !== IDENTITY_AUDIENCE) throw new HttpError(400, `input.audience must be ${IDENTITY_AUDIENCE}`);
    const seconds = typeof input.requestedDurationSeconds === 'number' ? input.requestedDurationSeconds : MAX_IDENTITY_SECONDS;
    const issued = this.issueIdentityToken(principal.taskId, seconds);
    const answer = JSON.stringify({
      data: { issueTaskIdentityToken: { __typename: 'IssueTaskIdentityTokenOutput', token: issued.token, expiresAt: issued.expiresAt } },
    });
    response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    response.end(answer);
  }

  /** OTLP/HTTP logs (protobuf) for the task the identity token names; kept as its `log` events, bounded. */
  private async logs(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const token = bearerToken(request.headers.authorization);
    const taskId = token === undefined ? undefined : this.identityTask(token);
    if (taskId === undefined || !this.store.task(taskId)) throw new HttpError(401, 'missing, unknown or expired identity token');
    const type = String(request.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim();
    if (type !== 'application/x-protobuf') throw new HttpError(415, 'send OTLP logs as application/x-protobuf');
    const body = await readBody(request, MAX_LOGS_BODY_BYTES);
    const { decodeLogsRequest } = await import('./otlp-logs.js');
    let records;
    try {
      records = decodeLogsRequest(body);
    } catch {
      throw new HttpError(400, 'the body is not an OTLP ExportLogsServiceRequest');
    }
    this.record(
      taskId,
      records.map(
        (r) =>
          `[${typeof r.attributes['log.source'] === 'string' ? r.attributes['log.source'] : r.attributes['event.name'] ? 'event' : 'worker'}] ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}`,
      ),
    );
    // An empty ExportLogsServiceResponse: full success.
    response.writeHead(200, { 'Content-Type': 'application/x-protobuf', 'Content-Length': '0' });
    response.end();
  }

  private record(taskId: string, lines: string[]): void {
    let used = this.kept.get(taskId) ?? this.store.eventBytes(taskId, LOG_EVENT_KIND);
    if (used >= MAX_STORED_LOG_BYTES || lines.length === 0) return;
    this.store.transaction(() => {
      for (const line of lines) {
        const size = Math.max(Buffer.byteLength(line), 1);
        if (used + size > MAX_STORED_LOG_BYTES) {
          this.store.addEvent(taskId, LOGS_TRUNCATED_KIND, `exported logs beyond ${MAX_STORED_LOG_BYTES} bytes are not kept`);
          used = MAX_STORED_LOG_BYTES;
          break;
        }
        this.store.addEvent(taskId, LOG_EVENT_KIND, line);
        used += size;
      }
    });
    this.kept.set(taskId, used);
    this.onRecorded?.(taskId);
  }

  /** Called after records of a task were stored (the dispatcher wakes its watchers). */
  onRecorded: ((taskId: string) => void) | undefined;
}

function readBody(request: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (Number(request.headers['content-length'] ?? 0) > limit) {
      request.resume();
      reject(new HttpError(413, `the body is larger than ${limit} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new HttpError(413, `the body is larger than ${limit} bytes`));
        request.destroy();
      } else chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}
