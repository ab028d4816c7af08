// The run client-events call from the worker's side: the body and URL (the Go
// worker's setup_events_test cases), the per-task target, the reporter's
// failure handling, its requests to a loopback server, and the core's per-task
// hook. The poster itself: http-post.test.ts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../src/log/logger.js';
import { createHttpPoster, PostError, type HttpPoster, type PostRequest } from '../../src/observability/http-post.js';
import { CLIENT_EVENT_TIMEOUT_MS, clientEventsTarget, SetupEventReporter } from '../../src/observability/setup-events.js';
import { clientEventBody, clientEventsUrl, ClientEventSchema, goTime, pathEscape } from '../../src/protocol/client-events.js';
import type { OutboundMessage } from '../../src/protocol/messages.js';
import type { Backend, ExecutionOutcome, TaskParams, TaskRun } from '../../src/task/contract.js';
import { TaskCancelled } from '../../src/task/failure.js';
import { Worker } from '../../src/worker/worker.js';
import { testConfig } from '../support/test-config.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const START = new Date('2026-08-12T15:35:00Z');
const plus = (ms: number) => new Date(START.getTime() + ms);

function capture(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  return { log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

describe('the client event body', () => {
  it.each([
    // Go's send case: start 15:35:00, finish 24.598 s later.
    ['a Docker phase', START, plus(24_598), false, '2026-08-12T15:35:24.598Z', 24_598],
    // Pod timestamps have whole seconds: no fraction, latency a multiple of 1000.
    ['a pod phase', plus(5_000), plus(30_000), false, '2026-08-12T15:35:30Z', 25_000],
    ['an equal start and finish', START, START, false, '2026-08-12T15:35:00Z', 0],
    ['a failed phase', START, plus(3_000), true, '2026-08-12T15:35:03Z', 3_000],
    ['a fraction with trailing zeros', START, plus(1_500), false, '2026-08-12T15:35:01.5Z', 1_500],
  ])('%s', (_, start, finish, isError, finishText, latency) => {
    const body = clientEventBody('setup_worker_image_pull', start, finish, isError, '4b0e3c9e-1f7a-4a55-9a56-0b3c2a1d2e3f');
    expect(Object.keys(body)).toEqual(['event_uuid', 'event_name', 'timestamp', 'payload']);
    expect(Object.keys(body.payload)).toEqual(['start_ts', 'finish_ts', 'latency_ms', 'is_error']);
    expect(body).toEqual({
      event_uuid: '4b0e3c9e-1f7a-4a55-9a56-0b3c2a1d2e3f',
      event_name: 'setup_worker_image_pull',
      timestamp: finishText,
      payload: { start_ts: goTime(start), finish_ts: finishText, latency_ms: latency, is_error: isError },
    });
    expect(new Date(body.payload.start_ts).getTime()).toBe(start.getTime());
    expect(ClientEventSchema.safeParse(body).success).toBe(true);
  });

  it.each([
    ['task-123', 'task-123'],
    ['a/b', 'a%2Fb'],
    ['a b', 'a%20b'],
    ['a;b,c?d#e', 'a%3Bb%2Cc%3Fd%23e'],
    ["$&+:=@!'()*~._-", '$&+:=@%21%27%28%29%2A~._-'],
    ['ü', '%C3%BC'],
  ])("escapes the task id %j as Go's url.PathEscape does", (id, escaped) => {
    expect(pathEscape(id)).toBe(escaped);
  });

  it.each([
    ['https://app.warp.dev', 'https://app.warp.dev/api/v1/agent/runs/task-123/client-events'],
    ['https://app.warp.dev/', 'https://app.warp.dev/api/v1/agent/runs/task-123/client-events'],
    ['http://127.0.0.1:8080/prefix', 'http://127.0.0.1:8080/prefix/api/v1/agent/runs/task-123/client-events'],
  ])('posts under the server root %s', (root, url) => {
    expect(clientEventsUrl(root, 'task-123')).toBe(url);
  });

  it.each([
    ['no uuid', { event_uuid: 'nope' }],
    ['an upper-case event name', { event_name: 'Setup' }],
    ['a timestamp that is not RFC 3339', { timestamp: '12 Aug 2026' }],
    ['a negative latency', { payload: { start_ts: '2026-08-12T15:35:00Z', finish_ts: '2026-08-12T15:35:00Z', latency_ms: -1, is_error: false } }],
    ['no payload', { payload: undefined }],
  ])('the schema refuses %s', (_, change) => {
    const body = { ...clientEventBody('setup_worker_job_create', START, plus(100), false, '4b0e3c9e-1f7a-4a55-9a56-0b3c2a1d2e3f'), ...change };
    expect(ClientEventSchema.safeParse(body).success).toBe(false);
  });
});

describe('the per-task target (Go: the reporter constructor)', () => {
  it.each([
    [
      'a key and a workload token',
      'https://app.warp.dev',
      { WARP_API_KEY: 'api-key', WARP_WORKLOAD_TOKEN: 'wl-token' },
      { 'X-Warp-Ambient-Workload-Token': 'wl-token' },
    ],
    [
      'a trailing slash on the root',
      'https://app.warp.dev/',
      { WARP_API_KEY: 'api-key', WARP_WORKLOAD_TOKEN: 'wl-token' },
      { 'X-Warp-Ambient-Workload-Token': 'wl-token' },
    ],
    ['a key only (the token is optional)', 'https://app.warp.dev', { WARP_API_KEY: 'api-key' }, {}],
    ['an empty workload token', 'https://app.warp.dev', { WARP_API_KEY: 'api-key', WARP_WORKLOAD_TOKEN: '' }, {}],
  ])('reports with %s', (_, root, env, token) => {
    expect(clientEventsTarget(root, 'task-123', env)).toEqual({
      url: 'https://app.warp.dev/api/v1/agent/runs/task-123/client-events',
      taskId: 'task-123',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer api-key', 'X-Warp-Cloud-Agent-ID': 'task-123', ...token },
      secrets: Object.keys(token).length ? ['api-key', 'wl-token'] : ['api-key'],
    });
  });

  it.each([
    ['no server root', '', { WARP_API_KEY: 'api-key' }, 'the worker has no server root URL configured'],
    ['no env vars', 'https://app.warp.dev', undefined, 'WARP_API_KEY is not present in the task assignment env vars'],
    ['no key', 'https://app.warp.dev', { WARP_WORKLOAD_TOKEN: 'wl-token' }, 'WARP_API_KEY is not present in the task assignment env vars'],
    ['an empty key', 'https://app.warp.dev', { WARP_API_KEY: '' }, 'WARP_API_KEY is not present in the task assignment env vars'],
  ])('is disabled with %s', (_, root, env, reason) => {
    expect(clientEventsTarget(root, 'task-123', env)).toEqual({ disabled: reason });
  });
});

/** A poster that answers as told and records what it was asked. */
function scriptedPoster(answer: () => Promise<{ status: number; text: string }>) {
  const posted: Array<{ url: string; body: Record<string, unknown> } & Omit<PostRequest, 'body'>> = [];
  const poster: HttpPoster = {
    post: async (url, request) => {
      posted.push({ url, ...request, body: JSON.parse(String(request.body)) as Record<string, unknown> });
      const { status, text } = await answer();
      return { status, headers: {}, body: Buffer.from(text) };
    },
    close: () => {},
  };
  return { poster, posted };
}

const TARGET = clientEventsTarget('https://app.warp.dev', 'task-123', { WARP_API_KEY: 'api-key', WARP_WORKLOAD_TOKEN: 'wl-token' }) as Exclude<
  ReturnType<typeof clientEventsTarget>,
  { disabled: string }
>;

describe('the reporter', () => {
  it('posts one event per phase, with a new uuid each, bounded by 5 s, following no redirect', async () => {
    const { log, lines } = capture();
    const { poster, posted } = scriptedPoster(async () => ({ status: 204, text: '' }));
    const reporter = new SetupEventReporter(TARGET, poster, log);
    const before = Date.now();
    await reporter.report('setup_worker_image_pull', START, plus(24_598), false);
    await reporter.report('setup_worker_container_start', plus(24_598), plus(25_000), false);
    const after = Date.now();
    expect(posted.map((p) => [p.url, p.headers, p.redirects])).toEqual([
      [TARGET.url, TARGET.headers, 'none'],
      [TARGET.url, TARGET.headers, 'none'],
    ]);
    for (const { deadline } of posted) {
      expect(deadline).toBeGreaterThanOrEqual(before + CLIENT_EVENT_TIMEOUT_MS);
      expect(deadline).toBeLessThanOrEqual(after + CLIENT_EVENT_TIMEOUT_MS);
    }
    expect(posted[0]!.body).toMatchObject({ event_name: 'setup_worker_image_pull', timestamp: '2026-08-12T15:35:24.598Z', payload: { latency_ms: 24_598 } });
    expect(posted[0]!.body.event_uuid).toMatch(UUID);
    expect(posted[1]!.body.event_uuid).toMatch(UUID);
    expect(posted[1]!.body.event_uuid).not.toBe(posted[0]!.body.event_uuid);
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });

  it.each([
    ['a 403', async () => ({ status: 403, text: 'forbidden for api-key' }), 'client event request returned status 403: forbidden for [REDACTED]'],
    ['a 500', async () => ({ status: 500, text: 'boom' }), 'client event request returned status 500: boom'],
    [
      'a refused connection',
      async () =>
        Promise.reject(
          new PostError('connection failed (ECONNREFUSED)', 'network', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })),
        ),
      'connect ECONNREFUSED 127.0.0.1:9',
    ],
    [
      'an unknown CA',
      async () =>
        Promise.reject(
          new PostError(
            'connection failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE)',
            'network',
            Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }),
          ),
        ),
      'unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)',
    ],
    ['no answer in time', async () => Promise.reject(new PostError('timed out', 'timeout')), 'no answer within 5 s'],
  ])('logs one warning, without the key, and never throws on %s', async (_, answer, reason) => {
    const { log, lines } = capture();
    const { poster, posted } = scriptedPoster(answer);
    await new SetupEventReporter(TARGET, poster, log).report('setup_worker_image_pull', START, plus(10), false);
    expect(posted).toHaveLength(1);
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings.map((l) => l.msg)).toEqual([`Failed to report setup event setup_worker_image_pull for task task-123: ${reason}`]);
    expect(JSON.stringify(lines)).not.toContain('api-key');
  });
});

describe('the reporter over HTTP', () => {
  let server: Server | undefined;
  let poster: HttpPoster | undefined;
  afterEach(async () => {
    poster?.close();
    server?.closeAllConnections();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = undefined;
  });

  async function serve(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<string> {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => handler(req, body, res));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it("sends Go's request: the run path, the key, the agent id and the workload token, the JSON body", async () => {
    const seen: Array<{ method: string | undefined; url: string | undefined; headers: IncomingMessage['headers']; body: string }> = [];
    const root = await serve((req, body, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(204).end();
    });
    poster = createHttpPoster({ env: {} });
    const target = clientEventsTarget(`${root}/`, 'task-123', { WARP_API_KEY: 'api-key', WARP_WORKLOAD_TOKEN: 'wl-token' });
    const { log, lines } = capture();
    await new SetupEventReporter(target as typeof TARGET, poster, log).report('setup_worker_job_create', START, plus(24_598), false);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      url: '/api/v1/agent/runs/task-123/client-events',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer api-key',
        'x-warp-cloud-agent-id': 'task-123',
        'x-warp-ambient-workload-token': 'wl-token',
      },
    });
    expect(JSON.parse(seen[0]!.body)).toMatchObject({ event_name: 'setup_worker_job_create', payload: { latency_ms: 24_598, is_error: false } });
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });

  it('leaves the workload token header out when the assignment has none', async () => {
    const headers: IncomingMessage['headers'][] = [];
    const root = await serve((req, _body, res) => {
      headers.push(req.headers);
      res.writeHead(200).end('{}');
    });
    poster = createHttpPoster({ env: {} });
    const target = clientEventsTarget(root, 'task-123', { WARP_API_KEY: 'api-key' });
    await new SetupEventReporter(target as typeof TARGET, poster, capture().log).report('setup_worker_job_create', START, START, false);
    expect(headers).toHaveLength(1);
    expect(headers[0]).not.toHaveProperty('x-warp-ambient-workload-token');
  });

  it("quotes a refusal's status and the first 512 bytes of its body", async () => {
    const root = await serve((_req, _body, res) => res.writeHead(403).end('x'.repeat(2000)));
    poster = createHttpPoster({ env: {} });
    const { log, lines } = capture();
    const target = clientEventsTarget(root, 'task-123', { WARP_API_KEY: 'api-key' });
    await new SetupEventReporter(target as typeof TARGET, poster, log).report('setup_worker_image_pull', START, START, false);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      `Failed to report setup event setup_worker_image_pull for task task-123: client event request returned status 403: ${'x'.repeat(512)}`,
    ]);
  });

  it('does not follow a redirect: it is the answer', async () => {
    const urls: Array<string | undefined> = [];
    const root = await serve((req, _body, res) => {
      urls.push(req.url);
      res.writeHead(307, { Location: '/elsewhere' }).end();
    });
    poster = createHttpPoster({ env: {} });
    const { log, lines } = capture();
    const target = clientEventsTarget(root, 'task-123', { WARP_API_KEY: 'api-key' });
    await new SetupEventReporter(target as typeof TARGET, poster, log).report('setup_worker_image_pull', START, START, false);
    expect(urls).toEqual(['/api/v1/agent/runs/task-123/client-events']);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      'Failed to report setup event setup_worker_image_pull for task task-123: client event request returned status 307: ',
    ]);
  });

  it('ends a report in flight when the worker shuts down, without a warning', async () => {
    let arrived!: () => void;
    const seen = new Promise<void>((resolve) => (arrived = resolve));
    const root = await serve(() => arrived());
    poster = createHttpPoster({ env: {} });
    const { log, lines } = capture();
    const target = clientEventsTarget(root, 'task-123', { WARP_API_KEY: 'api-key' });
    const report = new SetupEventReporter(target as typeof TARGET, poster, log).report('setup_worker_image_pull', START, START, false);
    await seen;
    poster.close();
    await report;
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });

  it('names a refused connection as the network said it', async () => {
    const root = await serve(() => {});
    server!.close();
    server = undefined;
    poster = createHttpPoster({ env: {} });
    const { log, lines } = capture();
    const target = clientEventsTarget(root, 'task-123', { WARP_API_KEY: 'api-key' });
    await new SetupEventReporter(target as typeof TARGET, poster, log).report('setup_worker_image_pull', START, START, false);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      `Failed to report setup event setup_worker_image_pull for task task-123: connect ECONNREFUSED ${root.replace('http://', '')}`,
    ]);
  });
});

describe('the core: one reporter per task', () => {
  const frame = (data: unknown) => JSON.stringify({ type: 'task_assignment', data });

  function setup(script: (run: TaskRun) => Promise<ExecutionOutcome>, serverRootUrl = 'https://app.warp.dev') {
    const { poster, posted } = scriptedPoster(async () => ({ status: 204, text: '' }));
    const { log, lines } = capture();
    const sent: OutboundMessage[] = [];
    const backend: Backend = { name: 'docker', preservesTasksOnShutdown: false, executeTask: script, shutdown: async () => {} };
    const worker = new Worker({
      config: testConfig({ workerId: 'w1', backend: 'docker', serverRootUrl }),
      backend,
      log,
      send: (m) => sent.push(m),
      buildParams: (a) => ({ taskId: a.task_id, executionId: a.execution_id ?? '' }) as TaskParams,
      clientEvents: poster,
    });
    return { worker, posted, lines, sent };
  }
  const settle = () => new Promise((r) => setImmediate(r));

  it("posts a task's phases with that task's own key", async () => {
    const { worker, posted } = setup(async (run) => {
      run.setupPhase?.('setup_worker_image_pull', START, plus(1_000), false);
      run.setupPhase?.('setup_worker_container_start', plus(1_000), plus(1_200), true);
      return { kind: 'completed' };
    });
    worker.handleFrame(frame({ task_id: 't-1', task: { id: 't-1' }, env_vars: { WARP_API_KEY: 'key-1' } }));
    worker.handleFrame(frame({ task_id: 't-2', task: { id: 't-2' }, env_vars: { WARP_API_KEY: 'key-2', WARP_WORKLOAD_TOKEN: 'wl-2' } }));
    await settle();
    expect(
      posted.map((p) => [
        p.url,
        p.headers.Authorization,
        p.headers['X-Warp-Ambient-Workload-Token'],
        p.body.event_name,
        (p.body.payload as { is_error: boolean }).is_error,
      ]),
    ).toEqual([
      ['https://app.warp.dev/api/v1/agent/runs/t-1/client-events', 'Bearer key-1', undefined, 'setup_worker_image_pull', false],
      ['https://app.warp.dev/api/v1/agent/runs/t-1/client-events', 'Bearer key-1', undefined, 'setup_worker_container_start', true],
      ['https://app.warp.dev/api/v1/agent/runs/t-2/client-events', 'Bearer key-2', 'wl-2', 'setup_worker_image_pull', false],
      ['https://app.warp.dev/api/v1/agent/runs/t-2/client-events', 'Bearer key-2', 'wl-2', 'setup_worker_container_start', true],
    ]);
  });

  it('warns once per task when the assignment has no key, and posts nothing', async () => {
    const { worker, posted, lines } = setup(async (run) => {
      run.setupPhase?.('setup_worker_image_pull', START, plus(1_000), false);
      run.setupPhase?.('setup_worker_container_start', plus(1_000), plus(1_200), false);
      return { kind: 'completed' };
    });
    worker.handleFrame(frame({ task_id: 'no-key', task: { id: 'no-key' } }));
    await settle();
    expect(posted).toEqual([]);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      'Setup event reporting is disabled for task no-key: WARP_API_KEY is not present in the task assignment env vars',
    ]);
  });

  it('says nothing about reporting for a task without setup phases', async () => {
    const { worker, lines } = setup(async () => ({ kind: 'completed' }));
    worker.handleFrame(frame({ task_id: 'plain', task: { id: 'plain' } }));
    await settle();
    expect(lines.filter((l) => l.level === 40)).toEqual([]);
  });

  it('never fails the task that reports: a phase it cannot report is one warning', async () => {
    const { worker, posted, lines, sent } = setup(async (run) => {
      run.setupPhase?.('setup_worker_image_pull', new Date(Number.NaN), START, false);
      run.setupPhase?.('setup_worker_container_start', START, plus(10), false);
      return { kind: 'completed' };
    });
    worker.handleFrame(frame({ task_id: 'odd', task: { id: 'odd' }, env_vars: { WARP_API_KEY: 'key-1' } }));
    await settle();
    expect(sent.at(-1)).toMatchObject({ type: 'task_completed' });
    expect(posted.map((p) => p.body.event_name)).toEqual(['setup_worker_container_start']);
    expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toEqual([
      expect.stringMatching(/^Failed to report setup event setup_worker_image_pull for task odd: /),
    ]);
  });

  it('does not post a phase that ends once the task is being cancelled', async () => {
    const { worker, posted, sent } = setup(
      (run) =>
        new Promise((_resolve, reject) => {
          run.setupPhase?.('setup_worker_job_create', START, plus(100), false);
          run.signal.addEventListener('abort', () => {
            // The pull the cancel interrupted ends now, as failed: neither a success nor a failure of the phase.
            run.setupPhase?.('setup_worker_image_pull', plus(100), plus(300), true);
            reject(new TaskCancelled());
          });
        }),
    );
    worker.handleFrame(frame({ task_id: 'c-1', task: { id: 'c-1' }, env_vars: { WARP_API_KEY: 'key-1' } }));
    await settle();
    worker.handleFrame(JSON.stringify({ type: 'task_cancellation', data: { task_id: 'c-1' } }));
    await settle();
    expect(sent.at(-1)).toMatchObject({ type: 'task_completed', data: { task_state: 'CANCELLED' } });
    expect(posted.map((p) => p.body.event_name)).toEqual(['setup_worker_job_create']);
  });
});
