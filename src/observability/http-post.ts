// Small JSON POSTs from the worker to the server's HTTP API (the run
// client-events call), through the same HTTPS_PROXY / HTTP_PROXY / NO_PROXY
// and `--ca-file` as the dispatch connection. undici does the work
// (http-post-undici.ts); it is loaded on the first request, so a worker that
// never posts never pays for it.
import type { Dispatcher } from 'undici';
import type { HttpPosterOptions, PostResponse } from './http-post-undici.js';

export type { HttpPosterOptions, PostResponse };

/** Sends one POST; rejects on a network error or once `timeoutMs` passed (connecting, sending and reading included). */
export interface HttpPoster {
  post(url: string, request: { headers: Record<string, string>; body: string; timeoutMs: number }): Promise<PostResponse>;
  /** Ends requests still in flight (a worker shutting down does not wait for them) and closes the connections. */
  close(): Promise<void>;
}

export function createHttpPoster(options: HttpPosterOptions): HttpPoster {
  let client: Promise<{ undici: typeof import('./http-post-undici.js'); dispatcher: Dispatcher }> | undefined;
  const load = () => (client ??= import('./http-post-undici.js').then((undici) => ({ undici, dispatcher: undici.makeDispatcher(options) })));
  return {
    async post(url, request) {
      const { undici, dispatcher } = await load();
      return undici.post(dispatcher, url, request);
    },
    async close() {
      if (client) await (await client).dispatcher.destroy();
    },
  };
}
