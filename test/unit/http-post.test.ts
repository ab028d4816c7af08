// The worker's one HTTP POST (setup timings, task logs) against loopback
// servers: answers and their bounded bodies, the two redirect policies, and how
// a call fails (fixed texts: never response content). Through a proxy and a
// private CA: test/integration/worker-proxy-ca.test.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpPoster, PostError, type HttpPoster, type PostRequest } from '../../src/observability/http-post.js';

const servers: Server[] = [];
let poster: HttpPoster | undefined;

afterEach(async () => {
  poster?.close();
  poster = undefined;
  await Promise.all(
    servers.splice(0).map((server) => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    }),
  );
});

interface Seen {
  method: string | undefined;
  url: string | undefined;
  headers: IncomingMessage['headers'];
  body: string;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      handler(req, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const request = (change: Partial<PostRequest> = {}): PostRequest => ({
  headers: { 'Content-Type': 'application/json', Authorization: 'Bearer secret' },
  body: '{"a":1}',
  deadline: Date.now() + 5_000,
  maxResponseBytes: 64,
  redirects: 'same-origin',
  ...change,
});

/** A server that sends every path under /hop/ one hop further, `hops` times, then answers 200. */
const hopping = (status: number, hops: number) => (req: IncomingMessage, res: ServerResponse) => {
  const n = Number(/\/hop\/(\d+)/.exec(req.url ?? '')?.[1] ?? 0);
  if (n < hops) res.writeHead(status, { Location: `/hop/${n + 1}` }).end();
  else res.writeHead(200).end('arrived');
};

describe('the HTTP poster', () => {
  it('answers with any status, the body cut to maxResponseBytes', async () => {
    const { url, seen } = await serve((_req, res) => res.writeHead(403, { 'X-Reason': 'no' }).end('x'.repeat(2000)));
    poster = createHttpPoster({ env: {} });
    const answer = await poster.post(`${url}/x`, request());
    expect(answer.status).toBe(403);
    expect(answer.headers['x-reason']).toBe('no');
    expect(answer.body.toString()).toBe('x'.repeat(64));
    expect(seen).toEqual([expect.objectContaining({ method: 'POST', url: '/x', body: '{"a":1}' })]);
    expect(seen[0]!.headers).toMatchObject({ authorization: 'Bearer secret', 'content-length': '7' });
  });

  it('without redirects, a redirect is the answer', async () => {
    const { url, seen } = await serve(hopping(307, 1));
    poster = createHttpPoster({ env: {} });
    const answer = await poster.post(`${url}/hop/0`, request({ redirects: 'none' }));
    expect(answer.status).toBe(307);
    expect(seen.map((s) => s.url)).toEqual(['/hop/0']);
  });

  it.each([307, 308])('follows a same-origin %i keeping method, body and headers', async (status) => {
    const { url, seen } = await serve(hopping(status, 2));
    poster = createHttpPoster({ env: {} });
    const answer = await poster.post(`${url}/hop/0`, request());
    expect([answer.status, answer.body.toString()]).toEqual([200, 'arrived']);
    expect(seen.map((s) => [s.method, s.url, s.body, s.headers.authorization])).toEqual([
      ['POST', '/hop/0', '{"a":1}', 'Bearer secret'],
      ['POST', '/hop/1', '{"a":1}', 'Bearer secret'],
      ['POST', '/hop/2', '{"a":1}', 'Bearer secret'],
    ]);
  });

  it.each([301, 302, 303])('turns a same-origin %i into a GET without a body, as Go does', async (status) => {
    const { url, seen } = await serve(hopping(status, 1));
    poster = createHttpPoster({ env: {} });
    expect((await poster.post(`${url}/hop/0`, request())).status).toBe(200);
    expect(seen.map((s) => [s.method, s.url, s.body, s.headers['content-type']])).toEqual([
      ['POST', '/hop/0', '{"a":1}', 'application/json'],
      ['GET', '/hop/1', '', undefined],
    ]);
    expect(seen[1]!.headers.authorization).toBe('Bearer secret');
  });

  it('never follows a redirect to another origin: it is the answer', async () => {
    const elsewhere = await serve((_req, res) => res.writeHead(200).end());
    const { url } = await serve((_req, res) => res.writeHead(307, { Location: `${elsewhere.url}/take` }).end());
    poster = createHttpPoster({ env: {} });
    expect((await poster.post(`${url}/x`, request())).status).toBe(307);
    expect(elsewhere.seen).toEqual([]);
  });

  it(`stops after 10 redirects`, async () => {
    const { url, seen } = await serve(hopping(307, 11));
    poster = createHttpPoster({ env: {} });
    await expect(poster.post(`${url}/hop/0`, request())).rejects.toMatchObject({
      message: 'stopped after 10 redirects',
      failure: 'redirects',
      retryable: false,
    });
    expect(seen).toHaveLength(11);
  });

  it('gives up on a server that never answers once the deadline passed', async () => {
    const { url } = await serve(() => {});
    poster = createHttpPoster({ env: {} });
    await expect(poster.post(`${url}/x`, request({ deadline: Date.now() + 200 }))).rejects.toMatchObject({
      message: 'timed out',
      failure: 'timeout',
      retryable: true,
    });
  });

  it('fails on a refused connection, naming its code; the network error is the cause', async () => {
    const { url } = await serve(() => {});
    servers.pop()!.close();
    poster = createHttpPoster({ env: {} });
    const error = await poster.post(`${url}/x`, request()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PostError);
    expect(error).toMatchObject({ message: 'connection failed (ECONNREFUSED)', failure: 'network', code: 'ECONNREFUSED', retryable: true });
    expect(((error as PostError).cause as Error).message).toMatch(/^connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
  });

  it('ends a call when its signal fires, and every call in flight when closed', async () => {
    let arrived!: () => void;
    const { url } = await serve(() => arrived());
    poster = createHttpPoster({ env: {} });
    const cancelled = { message: 'cancelled', failure: 'cancelled', retryable: false };

    const stop = new AbortController();
    const first = new Promise<void>((resolve) => (arrived = resolve));
    const call = poster.post(`${url}/x`, request({ signal: stop.signal }));
    await first;
    stop.abort();
    await expect(call).rejects.toMatchObject(cancelled);

    const second = new Promise<void>((resolve) => (arrived = resolve));
    const inFlight = poster.post(`${url}/x`, request());
    await second;
    poster.close();
    await expect(inFlight).rejects.toMatchObject(cancelled);
    await expect(poster.post(`${url}/x`, request())).rejects.toMatchObject(cancelled);
  });
});
