// A POST from the worker to an HTTP endpoint: the run client-events call (setup
// timings), the task-log identity call and OTLP exports. One poster per worker:
// keep-alive connections through the dispatch connection's HTTPS_PROXY /
// HTTP_PROXY / NO_PROXY and `--ca-file` (src/connection/transport.ts), a
// deadline over the whole call, a bounded response, an abort signal. Redirects
// are either the answer (`none`) or followed only to the same origin (scheme
// and host:port), at most 10, so credentials never travel anywhere else — the
// Go worker's `sameOriginRedirect`; a redirect elsewhere is returned as the
// answer. 307/308 keep method, body and headers; 301, 302 and 303 turn into a
// GET without a body, as Go's client does. node:http and the agents are loaded
// at the first post, so a worker that never posts pays nothing at start-up.
import type { Agent, IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { proxiedAgent } from '../connection/transport.js';

export const MAX_REDIRECTS = 10;

export interface PostRequest {
  headers: Record<string, string>;
  body: Uint8Array | string;
  /** The whole call (connecting, sending, reading, redirects) ends by then (epoch ms). */
  deadline: number;
  /** Response bytes kept; more are read and dropped. */
  maxResponseBytes: number;
  redirects: 'none' | 'same-origin';
  /** Ends the call. */
  signal?: AbortSignal | undefined;
}

export interface PostResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** At most the request's `maxResponseBytes`. */
  body: Buffer;
}

/** Why a call failed without a response. */
export type PostFailure = 'timeout' | 'cancelled' | 'network' | 'response' | 'redirects';

/**
 * A call that failed without a response. The message is a fixed text (plus a
 * network error's code): it never holds response content or credentials. The
 * network error itself is the `cause`.
 */
export class PostError extends Error {
  /** The network error's code (ECONNREFUSED, a TLS verification code, …). */
  readonly code: string | undefined;

  constructor(
    message: string,
    readonly failure: PostFailure,
    cause?: NodeJS.ErrnoException,
  ) {
    super(message, cause ? { cause } : undefined);
    this.code = cause?.code;
  }

  /** Whether trying again may help (the call did not end by choice). */
  get retryable(): boolean {
    return this.failure === 'timeout' || this.failure === 'network' || this.failure === 'response';
  }
}

export interface HttpPoster {
  /** Resolves with any answer, a refusal included; rejects with a PostError. */
  post(url: string, request: PostRequest): Promise<PostResponse>;
  /** Ends calls in flight (they fail as `cancelled`: the worker is stopping) and closes the connections. */
  close(): void;
}

export interface HttpPosterOptions {
  /** Where the proxy variables come from (the worker's environment). */
  env: Readonly<Record<string, string | undefined>>;
  /** PEM text of extra CA certificates (`--ca-file`). */
  ca?: string | undefined;
}

// Loaded with require() at the first post (see src/connection/transport.ts).
const requireBuiltin = createRequire(import.meta.url);

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function sameOrigin(a: URL, b: URL): boolean {
  return a.protocol === b.protocol && a.host.toLowerCase() === b.host.toLowerCase();
}

export function createHttpPoster(options: HttpPosterOptions): HttpPoster {
  let agents: { http: Agent; https: Agent } | undefined;
  const closing = new AbortController();
  return {
    post(url, request) {
      agents ??= {
        http: proxiedAgent(false, { env: options.env, keepAlive: true }),
        https: proxiedAgent(true, { env: options.env, ca: options.ca, keepAlive: true }),
      };
      const signal = request.signal ? AbortSignal.any([request.signal, closing.signal]) : closing.signal;
      return postFollowing(new URL(url), { ...request, signal }, agents);
    },
    close() {
      closing.abort();
      agents?.http.destroy();
      agents?.https.destroy();
    },
  };
}

async function postFollowing(url: URL, request: PostRequest, agents: { http: Agent; https: Agent }): Promise<PostResponse> {
  let current = url;
  let method = 'POST';
  let body: Uint8Array | string | undefined = request.body;
  let headers = request.headers;
  for (let redirects = 0; ; redirects++) {
    const response = await once(current, method, headers, body, request, current.protocol === 'https:' ? agents.https : agents.http);
    if (request.redirects === 'none' || !REDIRECTS.has(response.status)) return response;
    const location = response.headers.location;
    if (location === undefined) return response;
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      return response;
    }
    if (!sameOrigin(current, next)) return response;
    if (redirects + 1 > MAX_REDIRECTS) throw new PostError(`stopped after ${MAX_REDIRECTS} redirects`, 'redirects');
    if (response.status !== 307 && response.status !== 308) {
      method = 'GET';
      body = undefined;
      headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !/^content-(type|length|encoding)$/i.test(name)));
    }
    current = next;
  }
}

function once(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: Uint8Array | string | undefined,
  request: PostRequest,
  agent: Agent,
): Promise<PostResponse> {
  return new Promise((resolve, reject) => {
    const { signal } = request;
    const remaining = request.deadline - Date.now();
    if (remaining <= 0) {
      reject(new PostError('timed out', 'timeout'));
      return;
    }
    if (signal?.aborted) {
      reject(new PostError('cancelled', 'cancelled'));
      return;
    }
    const { request: send } = requireBuiltin(url.protocol === 'https:' ? 'node:https' : 'node:http') as typeof import('node:http');
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      outcome();
    };
    const call = send(
      url,
      { method, headers: { ...headers, ...(body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }) }, agent },
      (response) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        response.on('data', (chunk: Buffer) => {
          if (kept >= request.maxResponseBytes) return;
          const part = chunk.subarray(0, request.maxResponseBytes - kept);
          chunks.push(part);
          kept += part.length;
        });
        response.on('end', () => finish(() => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) })));
        response.on('error', (error: NodeJS.ErrnoException) => finish(() => reject(new PostError('the response broke off', 'response', error))));
      },
    );
    const onAbort = (): void => {
      call.destroy();
      finish(() => reject(new PostError('cancelled', 'cancelled')));
    };
    const timer = setTimeout(() => {
      call.destroy();
      finish(() => reject(new PostError('timed out', 'timeout')));
    }, remaining);
    signal?.addEventListener('abort', onAbort, { once: true });
    call.on('error', (error: NodeJS.ErrnoException) =>
      finish(() => reject(new PostError(`connection failed${error.code ? ` (${error.code})` : ''}`, 'network', error))),
    );
    call.end(body);
  });
}
