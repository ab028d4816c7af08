// How an OTLP export reaches the task's collector: the serialized request (the
// OpenTelemetry SDK's protobuf) POSTed with the task's identity token, redirects
// only to the same origin, retried as the Go worker's exporter does (500 ms,
// then up to 1 s apart, within the export's 5 s). Every failure reaches the SDK
// as one fixed text, so a collector that echoes the Authorization header cannot
// leak it through an error message; the reason (a status code, never response
// text) goes to `onFailure` for the worker log.
import type { ExportResponse, IExporterTransport } from '@opentelemetry/otlp-exporter-base';
import { PostError, type HttpPoster } from '../http-post.js';
import { IdentityError, type IdentityTokenSource } from './identity-token.js';

export const EXPORT_FAILED = 'task log export failed';
export const RETRY_INITIAL_MS = 500;
export const RETRY_MAX_INTERVAL_MS = 1_000;
/** Statuses a collector uses for "later" (the OTLP/HTTP specification's retryable ones). */
const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);
const MAX_COLLECTOR_RESPONSE_BYTES = 64 * 1024;

export interface CollectorTransportOptions {
  url: string;
  tokens: Pick<IdentityTokenSource, 'token'>;
  poster: HttpPoster;
  /** Ends every call in flight (the final flush ran out of time). */
  abort: AbortSignal;
  onFailure: (reason: string) => void;
  onSuccess?: () => void;
}

/** Seconds (or an HTTP date) of a Retry-After header, in milliseconds. */
function retryAfterMs(header: string | string[] | undefined, now: number): number | undefined {
  const text = Array.isArray(header) ? header[0] : header;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export class CollectorTransport implements IExporterTransport {
  constructor(private readonly options: CollectorTransportOptions) {}

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    const { options } = this;
    const deadline = Date.now() + timeoutMillis;
    let interval = RETRY_INITIAL_MS;
    for (;;) {
      let reason: string;
      let wait = interval;
      try {
        const token = await options.tokens.token();
        const response = await options.poster.post(options.url, {
          headers: { 'Content-Type': 'application/x-protobuf', Authorization: `Bearer ${token}` },
          body: data,
          deadline,
          signal: options.abort,
          maxResponseBytes: MAX_COLLECTOR_RESPONSE_BYTES,
          redirects: 'same-origin',
        });
        if (response.status >= 200 && response.status <= 299) {
          options.onSuccess?.();
          return { status: 'success' };
        }
        reason = `the collector answered HTTP ${response.status}`;
        if (!RETRYABLE_STATUSES.has(response.status)) return this.failed(reason);
        wait = retryAfterMs(response.headers['retry-after'], Date.now()) ?? interval;
      } catch (error) {
        if (error instanceof IdentityError) return this.failed(error.message);
        if (!(error instanceof PostError) || !error.retryable)
          return this.failed(`the collector call failed (${error instanceof PostError ? error.message : 'unexpected error'})`);
        reason = `the collector call failed (${error.message})`;
      }
      if (options.abort.aborted || Date.now() + wait >= deadline) return this.failed(reason);
      await new Promise((resolve) => setTimeout(resolve, wait));
      interval = Math.min(interval * 2, RETRY_MAX_INTERVAL_MS);
    }
  }

  private failed(reason: string): ExportResponse {
    this.options.onFailure(reason);
    return { status: 'failure', error: new Error(EXPORT_FAILED) };
  }

  shutdown(): void {}
}
