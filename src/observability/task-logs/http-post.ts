// The one HTTP call shape task logs make (the identity token, the collector):
// a POST that follows redirects only to the same origin (scheme and host:port),
// at most 10, so credentials never travel anywhere else — the Go worker's
// `sameOriginRedirect`. A redirect elsewhere is returned as the response (the
// caller treats it as a failure). 307/308 keep method, body and headers; 301,
// 302 and 303 turn into a GET without a body, as Go's client does.
import type { Agent, IncomingHttpHeaders } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

export const MAX_REDIRECTS = 10;

export interface PostOptions {
  headers: Record<string, string>;
  body: Uint8Array | string;
  /** The whole call, redirects included, ends by then (epoch ms). */
  deadline: number;
  /** Aborts the call (the reporter shut down). */
  signal?: AbortSignal | undefined;
  /** Response bytes kept; more are read and dropped. */
  maxResponseBytes: number;
  agents?: { http?: Agent | undefined; https?: Agent | undefined } | undefined;
}

export interface PostResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** Why a call failed without a response; the text never holds response content or credentials. */
export class PostError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function sameOrigin(a: URL, b: URL): boolean {
  return a.protocol === b.protocol && a.host.toLowerCase() === b.host.toLowerCase();
}

export async function postFollowingSameOrigin(url: string, options: PostOptions): Promise<PostResponse> {
  let current = new URL(url);
  let method = 'POST';
  let body: Uint8Array | string | undefined = options.body;
  let headers = options.headers;
  for (let redirects = 0; ; redirects++) {
    const response = await once(current, method, headers, body, options);
    if (!REDIRECTS.has(response.status)) return response;
    const location = response.headers.location;
    if (location === undefined) return response;
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      return response;
    }
    if (!sameOrigin(current, next)) return response;
    if (redirects + 1 > MAX_REDIRECTS) throw new PostError(`stopped after ${MAX_REDIRECTS} redirects`, false);
    if (response.status !== 307 && response.status !== 308) {
      method = 'GET';
      body = undefined;
      headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !/^content-(type|length|encoding)$/i.test(name)));
    }
    current = next;
  }
}

function once(url: URL, method: string, headers: Record<string, string>, body: Uint8Array | string | undefined, options: PostOptions): Promise<PostResponse> {
  return new Promise((resolve, reject) => {
    const remaining = options.deadline - Date.now();
    if (remaining <= 0) {
      reject(new PostError('timed out', true));
      return;
    }
    if (options.signal?.aborted) {
      reject(new PostError('cancelled', false));
      return;
    }
    const secure = url.protocol === 'https:';
    const agent = secure ? options.agents?.https : options.agents?.http;
    const send = secure ? httpsRequest : httpRequest;
    let settled = false;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      outcome();
    };
    const request = send(
      url,
      { method, headers: { ...headers, ...(body === undefined ? {} : { 'Content-Length': String(Buffer.byteLength(body)) }) }, ...(agent ? { agent } : {}) },
      (response) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        response.on('data', (chunk: Buffer) => {
          if (kept >= options.maxResponseBytes) return;
          const part = chunk.subarray(0, options.maxResponseBytes - kept);
          chunks.push(part);
          kept += part.length;
        });
        response.on('end', () => finish(() => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) })));
        response.on('error', () => finish(() => reject(new PostError('the response broke off', true))));
      },
    );
    const onAbort = (): void => {
      request.destroy();
      finish(() => reject(new PostError('cancelled', false)));
    };
    const timer = setTimeout(() => {
      request.destroy();
      finish(() => reject(new PostError('timed out', true)));
    }, remaining);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    request.on('error', (error: NodeJS.ErrnoException) =>
      finish(() => reject(new PostError(`connection failed${error.code ? ` (${error.code})` : ''}`, true))),
    );
    request.end(body);
  });
}
