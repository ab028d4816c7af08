// One task's log export against a stand-in identity server and collector on
// loopback: what is sent, as whom, and what never is.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { createHttpPoster } from '../../src/observability/http-post.js';
import type { TaskAssignment } from '../../src/protocol/messages.js';
import { TaskLogExports, taskLogPlan, type TaskLogReporter } from '../../src/observability/task-logs.js';
import { CollectorTransport, EXPORT_FAILED } from '../../src/observability/task-logs/collector-transport.js';
import { IDENTITY_QUERY, IdentityTokenSource, parseIdentityResponse } from '../../src/observability/task-logs/identity-token.js';
import { REDACTED } from '../../src/observability/task-logs/redaction.js';
import { TelemetryStub } from '../support/telemetry-stub.js';

const WORKER_KEY = 'wk_worker_key_0123456789';
let stub: TelemetryStub;
const reporters: TaskLogReporter[] = [];
const warnings: string[] = [];
const poster = createHttpPoster({ env: {} });

afterEach(async () => {
  await Promise.all(reporters.splice(0).map((r) => r.shutdown(200)));
  await stub?.close();
  warnings.length = 0;
});
afterAll(() => poster.close());

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}

async function quietLog() {
  return createLogger({
    level: 'warn',
    destination: {
      write: (line: string) => {
        warnings.push(JSON.parse(line).msg as string);
        return true;
      },
    } as never,
  });
}

function assignmentFor(taskId: string, extra: Partial<TaskAssignment> = {}, env: Record<string, string> = {}): TaskAssignment {
  return {
    task_id: taskId,
    execution_id: `execution-${taskId}`,
    task: {},
    env_vars: { WARP_API_KEY: `key-${taskId}`, WARP_WORKLOAD_TOKEN: `workload-${taskId}`, ...env },
    telemetry_collection: { endpoint: stub.endpoint, logging_enabled: true, tracing_enabled: false },
    ...extra,
  };
}

async function open(assignment: TaskAssignment, collect = true): Promise<TaskLogReporter | undefined> {
  const exports = new TaskLogExports({
    collect,
    serverRootUrl: `${stub.url}/`,
    workerId: 'worker-1',
    backend: 'direct',
    workerApiKey: WORKER_KEY,
    poster,
  });
  const reporter = await exports.open(assignment, await quietLog());
  if (reporter) reporters.push(reporter);
  return reporter;
}

describe('task log export', () => {
  it('sends output lines with the Go worker resource, scope and record shape, as the task identity, fetched at first export', async () => {
    stub = await TelemetryStub.start();
    const reporter = (await open(assignmentFor('run-1')))!;
    const out = reporter.writer('agent.stdout');
    const err = reporter.writer('agent.stderr');
    out.write('hello\nwor');
    err.write('oops\n');
    expect(stub.identityCalls).toHaveLength(0);
    out.write('ld\n');
    out.end();
    await reporter.flush();

    expect(stub.identityCalls).toHaveLength(1);
    const identity = stub.identityCalls[0]!;
    expect(identity.headers).toMatchObject({
      'content-type': 'application/json',
      authorization: 'Bearer key-run-1',
      'x-warp-cloud-agent-id': 'run-1',
      'x-warp-ambient-workload-token': 'workload-run-1',
    });
    expect(identity.body).toEqual({ query: IDENTITY_QUERY, variables: { input: { audience: 'warp-cloud-agent-otel', requestedDurationSeconds: 10800 } } });
    expect(identity.body.query).toContain('osContext: {}, clientContext: {}');

    expect(stub.collectorCalls[0]!.headers).toMatchObject({ authorization: 'Bearer issued-1', 'content-type': 'application/x-protobuf' });
    const records = stub.records;
    expect(records.map((r) => [r.body, r.attributes['log.source']])).toEqual([
      ['hello', 'agent.stdout'],
      ['oops', 'agent.stderr'],
      ['world', 'agent.stdout'],
    ]);
    expect(records[0]).toMatchObject({
      resource: { 'service.name': 'oz-agent-worker', 'worker.id': 'worker-1', 'worker.backend': 'direct', run_id: 'run-1', execution_id: 'execution-run-1' },
      scope: 'oz-agent-worker.task',
      severityNumber: 9,
      severityText: 'info',
      attributes: { 'log.source': 'agent.stdout' },
    });
    expect(Object.keys(records[0]!.resource).sort()).toEqual(['execution_id', 'run_id', 'service.name', 'worker.backend', 'worker.id']);
  });

  it('puts a writer’s attributes (as they were when it was made) before log.source', async () => {
    stub = await TelemetryStub.start();
    const reporter = (await open(assignmentFor('run-attrs')))!;
    const attributes = { 'container.name': 'friendly-task', 'log.iostream': 'stdout' };
    const out = reporter.writer('container.stdout', attributes);
    attributes['container.name'] = 'changed';
    out.write('line\n');
    await reporter.flush();
    expect(Object.entries(stub.records[0]!.attributes)).toEqual([
      ['container.name', 'friendly-task'],
      ['log.iostream', 'stdout'],
      ['log.source', 'container.stdout'],
    ]);
  });

  it('emits a setup phase as a record with the Go worker’s event attributes', async () => {
    stub = await TelemetryStub.start();
    const reporter = (await open(assignmentFor('run-event')))!;
    reporter.event('setup_worker_image_pull', new Date('2026-08-12T15:35:00Z'), new Date('2026-08-12T15:35:24.598Z'), true);
    await reporter.flush();
    expect(stub.records[0]).toMatchObject({
      body: 'setup_worker_image_pull',
      attributes: {
        'event.name': 'setup_worker_image_pull',
        start_ts: '2026-08-12T15:35:00Z',
        finish_ts: '2026-08-12T15:35:24.598Z',
        latency_ms: 24598,
        is_error: true,
      },
    });
  });

  it('redacts the task’s values, the worker key, the bootstrap token and the issued token; two tasks never share secrets or credentials', async () => {
    stub = await TelemetryStub.start();
    const alpha = (await open(
      assignmentFor(
        'alpha',
        {
          telemetry_collection: {
            endpoint: stub.endpoint,
            logging_enabled: true,
            bootstrap_token: { token: 'bootstrap-secret', expires_at: '2026-10-06T20:00:00Z' },
          },
        },
        { CUSTOM_CREDENTIAL: 'overlap-secret' },
      ),
    ))!;
    const beta = (await open(assignmentFor('beta')))!;
    alpha.redact(['operator-value']);
    const a = alpha.writer('agent.stdout');
    a.write('output overlap-');
    a.write('secret key-alpha workload-alpha\n');
    a.write(`worker ${WORKER_KEY} bootstrap-secret operator-value\n`);
    await alpha.flush();
    a.write('token issued-1\n');
    beta.writer('agent.stdout').write('beta says overlap-secret key-alpha\n');
    await Promise.all([alpha.flush(), beta.flush()]);

    const byRun = (run: string) => stub.records.filter((r) => r.resource.run_id === run).map((r) => r.body);
    expect(byRun('alpha')).toEqual([`output ${REDACTED} ${REDACTED} ${REDACTED}`, `worker ${REDACTED} ${REDACTED} ${REDACTED}`, `token ${REDACTED}`]);
    // Another task's values are not its secrets; its credentials are its own.
    expect(byRun('beta')).toEqual(['beta says overlap-secret key-alpha']);
    for (const call of stub.collectorCalls) {
      const run = call.records[0]!.resource.run_id;
      expect(call.headers.authorization).toBe(run === 'alpha' ? 'Bearer issued-1' : 'Bearer issued-2');
    }
    expect(stub.identityCalls.map((c) => c.headers['x-warp-cloud-agent-id'])).toEqual(['alpha', 'beta']);
  });

  it('drops records written after the end, and gives a partial last line out at the end', async () => {
    stub = await TelemetryStub.start();
    const reporter = (await open(assignmentFor('run-end')))!;
    const out = reporter.writer('hook.stdout');
    out.write('unterminated');
    await reporter.shutdown();
    out.write('late\n');
    reporter.writer('agent.stdout').write('later\n');
    await reporter.shutdown();
    expect(stub.bodies()).toEqual(['unterminated']);
    expect(reporter.closed.aborted).toBe(true);
  });

  it('gives at most 128 writers per task; the rest are silent', async () => {
    stub = await TelemetryStub.start();
    const reporter = (await open(assignmentFor('run-writers')))!;
    for (let i = 0; i < 130; i++) reporter.writer(`pod.c${i}`).write(`c${i}\n`);
    await reporter.flush();
    expect(stub.records).toHaveLength(128);
    expect(stub.bodies()).not.toContain('c128');
  });

  it('follows same-origin redirects of both calls, keeping method, body and credentials', async () => {
    stub = await TelemetryStub.start();
    stub.identityMode = { redirect: '/identity', status: 307 };
    stub.collectorMode = { redirect: '/logs', status: 308 };
    const reporter = (await open(assignmentFor('run-redirect')))!;
    reporter.writer('agent.stdout').write('moved\n');
    await reporter.flush();
    expect(stub.otherCalls.map((c) => [c.method, c.url, c.headers.authorization])).toEqual([
      ['POST', '/identity', 'Bearer key-run-redirect'],
      ['POST', '/logs', 'Bearer issued-1'],
    ]);
    expect(stub.bodies()).toEqual(['moved']);
  });

  it('never follows a collector redirect to another origin (no credentials leave)', async () => {
    stub = await TelemetryStub.start();
    const elsewhere = await TelemetryStub.start();
    try {
      stub.collectorMode = { redirect: `${elsewhere.url}/logs`, status: 307 };
      const reporter = (await open(assignmentFor('run-cross')))!;
      reporter.writer('agent.stdout').write('stay\n');
      await reporter.flush();
      expect(elsewhere.otherCalls).toHaveLength(0);
      expect(warnings).toEqual(['Task log export failed: the collector answered HTTP 307; records that cannot be sent are dropped']);
    } finally {
      await elsewhere.close();
    }
  });

  it('never follows an identity redirect to another origin', async () => {
    stub = await TelemetryStub.start();
    const elsewhere = await TelemetryStub.start();
    try {
      stub.identityMode = { redirect: `${elsewhere.url}/identity`, status: 307 };
      const reporter = (await open(assignmentFor('run-cross-id')))!;
      reporter.writer('agent.stdout').write('stay\n');
      await reporter.flush();
      expect(elsewhere.otherCalls).toHaveLength(0);
      expect(stub.collectorCalls).toHaveLength(0);
      expect(warnings).toEqual(['Task log export failed: task identity request rejected; records that cannot be sent are dropped']);
    } finally {
      await elsewhere.close();
    }
  });

  it('fails an export with a fixed text when the collector echoes the Authorization header', async () => {
    stub = await TelemetryStub.start();
    stub.collectorMode = 'echo-403';
    const failures: string[] = [];
    const transport = new CollectorTransport({
      url: `${stub.endpoint}/v1/logs`,
      tokens: { token: async () => 'very-secret-identity' },
      poster,
      abort: new AbortController().signal,
      onFailure: (reason) => failures.push(reason),
    });
    const result = await transport.send(new Uint8Array(), 5_000);
    expect(result).toEqual({ status: 'failure', error: new Error(EXPORT_FAILED) });
    expect(failures).toEqual(['the collector answered HTTP 403']);
  });

  it('sends nothing when the identity call is refused, and says so once without the response text', async () => {
    stub = await TelemetryStub.start();
    stub.identityMode = 'reject';
    const reporter = (await open(assignmentFor('run-refused')))!;
    reporter.writer('agent.stdout').write('one\n');
    await reporter.flush();
    reporter.writer('agent.stdout').write('two\n');
    await reporter.shutdown();
    expect(stub.collectorCalls).toHaveLength(0);
    expect(stub.identityCalls.length).toBeGreaterThanOrEqual(1);
    expect(warnings).toEqual(['Task log export failed: task identity request rejected; records that cannot be sent are dropped']);
    expect(warnings.join('\n')).not.toContain('private credential');
  });

  it('keeps at most the queue (1024 records) while the collector is stuck, and writing never waits', async () => {
    stub = await TelemetryStub.start();
    stub.collectorMode = 'hold';
    const reporter = (await open(assignmentFor('run-slow')))!;
    const out = reporter.writer('agent.stdout');
    out.write('first\n'.repeat(128));
    // The first batch is held by the collector; everything written meanwhile queues up to 1024 and is dropped beyond.
    await until(() => stub.collectorCalls.length === 1);
    for (let i = 0; i < 4096; i++) out.write(`line ${i}\n`);
    stub.release();
    await reporter.shutdown();
    const received = stub.records.length;
    expect(received).toBeGreaterThanOrEqual(1024);
    expect(received).toBeLessThanOrEqual(128 + 1024);
  });

  it('ends in bounded time against a collector or identity server that never answers', async () => {
    for (const stuck of ['collector', 'identity'] as const) {
      stub = await TelemetryStub.start();
      if (stuck === 'collector') stub.collectorMode = 'stall';
      else stub.identityMode = 'stall';
      const reporter = (await open(assignmentFor(`run-stuck-${stuck}`)))!;
      reporter.writer('agent.stdout').write('x\n'.repeat(200));
      await reporter.flush(100);
      await reporter.shutdown(100);
      expect(reporter.closed.aborted).toBe(true);
      await stub.close();
    }
    stub = await TelemetryStub.start();
  });
});

describe('whether a task gets a log export', () => {
  const settings = { collect: true, serverRootUrl: 'https://app.warp.dev' };
  const base = (telemetry: TaskAssignment['telemetry_collection'], env: Record<string, string> = { WARP_API_KEY: 'k', WARP_WORKLOAD_TOKEN: 'w' }) =>
    ({ task_id: 't', task: {}, env_vars: env, ...(telemetry ? { telemetry_collection: telemetry } : {}) }) as TaskAssignment;
  it.each([
    ['no telemetry_collection', base(undefined), settings, 'off'],
    ['tracing only', base({ endpoint: 'https://c.example/otlp', tracing_enabled: true, logging_enabled: false }), settings, 'off'],
    ['the operator switched it off', base({ endpoint: 'https://c.example/otlp', logging_enabled: true }), { ...settings, collect: false }, 'off'],
    [
      'no workload token',
      base({ endpoint: 'https://c.example/otlp', logging_enabled: true }, { WARP_API_KEY: 'k' }),
      settings,
      'task log reporting requires task API key and workload token',
    ],
    [
      'no API key',
      base({ endpoint: 'https://c.example/otlp', logging_enabled: true }, { WARP_WORKLOAD_TOKEN: 'w' }),
      settings,
      'task log reporting requires task API key and workload token',
    ],
    ['a file endpoint', base({ endpoint: 'file:///tmp/logs', logging_enabled: true }), settings, 'invalid task log collector endpoint'],
    ['an endpoint with user info', base({ endpoint: 'https://u:p@c.example/otlp', logging_enabled: true }), settings, 'invalid task log collector endpoint'],
    ['an endpoint with a query', base({ endpoint: 'https://c.example/otlp?x=1', logging_enabled: true }), settings, 'invalid task log collector endpoint'],
    ['an endpoint with a fragment', base({ endpoint: 'https://c.example/otlp#f', logging_enabled: true }), settings, 'invalid task log collector endpoint'],
    ['no endpoint', base({ logging_enabled: true }), settings, 'invalid task log collector endpoint'],
    [
      'an unusable server root',
      base({ endpoint: 'https://c.example/otlp', logging_enabled: true }),
      { ...settings, serverRootUrl: 'ftp://x' },
      'invalid task identity endpoint',
    ],
  ])('%s', (_name, assignment, s, expected) => {
    const plan = taskLogPlan(assignment, s);
    expect(plan.kind === 'unavailable' ? plan.reason : plan.kind).toBe(expected);
  });

  it('appends /v1/logs to the endpoint path without its trailing slashes', () => {
    const plan = taskLogPlan(base({ endpoint: 'https://collector.example/agent/otlp/', logging_enabled: true }), settings);
    expect(plan.kind === 'on' && plan.target.collectorUrl).toBe('https://collector.example/agent/otlp/v1/logs');
  });
});

describe('identity token', () => {
  const now = Date.parse('2026-09-01T00:00:00Z');
  const ok = (extra: Record<string, unknown> = {}) =>
    Buffer.from(
      JSON.stringify({
        data: { issueTaskIdentityToken: { __typename: 'IssueTaskIdentityTokenOutput', token: 'tok', expiresAt: '2026-09-01T03:00:00Z', ...extra } },
      }),
    );
  it.each([
    ['a refused call', 401, ok(), 'task identity request rejected'],
    ['truncated JSON', 200, Buffer.from('{"data":'), 'invalid task identity response'],
    ['another type', 200, ok({ __typename: 'UserFacingError', message: 'private credential' }), 'task identity token unavailable'],
    ['an errors array', 200, Buffer.from(JSON.stringify({ errors: [{ message: 'private credential' }], data: null })), 'task identity token unavailable'],
    ['an expiry in the past', 200, ok({ expiresAt: '2000-01-01T00:00:00Z' }), 'task identity token unavailable'],
    ['an empty token', 200, ok({ token: '' }), 'task identity token unavailable'],
  ])('refuses %s with a fixed text', (_name, status, body, text) => {
    expect(() => parseIdentityResponse(status, body, now)).toThrow(new Error(text));
  });

  it('reads a usable token', () => {
    expect(parseIdentityResponse(200, ok(), now)).toEqual({ token: 'tok', expiresAt: Date.parse('2026-09-01T03:00:00Z') });
  });

  it('is fetched once for concurrent callers and again only within a minute of its expiry', async () => {
    stub = await TelemetryStub.start();
    stub.tokenLifetimeSeconds = 30;
    const source = new IdentityTokenSource({ serverRootUrl: stub.url, apiKey: 'k', workloadToken: 'w', taskId: 't', poster });
    expect(await source.token()).toBe('issued-1');
    stub.tokenLifetimeSeconds = 3600;
    const tokens = await Promise.all(Array.from({ length: 32 }, () => source.token()));
    expect(new Set(tokens)).toEqual(new Set(['issued-2']));
    expect(await source.token()).toBe('issued-2');
    expect(stub.identityCalls).toHaveLength(2);
  });
});
