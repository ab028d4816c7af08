// The `oz-worker task` client's pure parts: what a refusal says, how the
// server URL is checked, and how tasks and events are laid out.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { TaskJson } from '../../src/local/api-client.js';
import { cliMessage, parseServerUrl, type RequestContext } from '../../src/local/client-errors.js';
import { EVENT_KIND_WIDTH, formatAge, formatEvent, formatFailureDetails, formatTaskTable } from '../../src/local/task-format.js';
import { clientEventBody } from '../../src/protocol/client-events.js';
import { clientEventDetail, formatLatency } from '../../src/server/client-events.js';

const fromFlag: RequestContext = { serverUrl: 'http://127.0.0.1:7317/', keySource: { kind: 'flag', flag: '--api-key' } };
const fromFile: RequestContext = { serverUrl: 'http://127.0.0.1:7317/', keySource: { kind: 'file', path: '/s/local.json' } };

describe('cliMessage', () => {
  it.each([
    [
      'a refused key names --api-key and OZ_API_KEY',
      { message: 'missing or unknown API key: send "Authorization: Bearer <key>"', status: 401, code: 'unauthorized' },
      fromFlag,
      /does not accept the API key given with --api-key: pass one of its keys with --api-key <key> or OZ_API_KEY$/,
    ],
    [
      'a refused key from local.json says how to refresh it',
      { message: 'x', status: 401, code: 'unauthorized' },
      fromFile,
      /API key from \/s\/local\.json: .*run `npx oz-worker local` again/,
    ],
    [
      'an unknown or foreign task is "not visible"',
      { message: 'Forbidden', status: 403, code: 'forbidden' },
      { ...fromFlag, taskId: 'abc' },
      /^no task abc is visible to this key: it does not exist, or another user or team owns it/,
    ],
    [
      'a team without a default agent names --agent-config',
      {
        message: 'team 3 (ops) has no default agent configuration; pass "agent_config" with the task, or set one with PUT /api/v1/teams/3/default-agent',
        status: 404,
        code: 'no_default_agent',
      },
      fromFlag,
      /^team 3 \(ops\) has no default agent configuration: pass one with --agent-config '\{"model_id":"auto"\}' .*oz-worker admin default-agent set 3 /,
    ],
    [
      'an unknown device names the admin command',
      { message: 'device d1 is not registered; list devices with GET /api/v1/devices', status: 400, code: 'unknown_device' },
      fromFlag,
      /^device d1 is not registered: `npx oz-worker admin device list`/,
    ],
  ])('%s', (_what, refusal, context, expected) => {
    const text = cliMessage(refusal, context);
    expect(text).toMatch(expected);
    expect(text).not.toMatch(/PUT |GET |POST |HTTP|Bearer/);
  });

  it('keeps other sentences as the server wrote them', () => {
    expect(cliMessage({ message: 'task t already ended (completed); nothing to cancel', status: 409, code: 'already_finished' }, fromFlag)).toBe(
      'task t already ended (completed); nothing to cancel',
    );
    // A 403 on creating a task is about the owner, not a missing task.
    expect(
      cliMessage({ message: 'you cannot create tasks for TEAM 5; use a key of that team', status: 403, code: 'forbidden' }, { ...fromFlag, taskId: 'x' }),
    ).toMatch(/^you cannot/);
  });
});

describe('parseServerUrl', () => {
  it.each([
    ['not-a-url', { kind: 'flag', flag: '--server' } as const, /^invalid --server "not-a-url": not a URL/],
    ['localhost:7317', { kind: 'env', name: 'OZ_SERVER_URL' } as const, /^invalid \$OZ_SERVER_URL "localhost:7317": use an http:\/\/ or https:\/\/ URL/],
    ['ftp://h/', { kind: 'file', path: '/s/local.json' } as const, /^invalid server_url in \/s\/local\.json/],
  ])('refuses %s', (text, source, expected) => {
    expect(() => parseServerUrl(text, source)).toThrow(expected);
  });
  it('accepts http and https URLs', () => {
    expect(parseServerUrl('http://127.0.0.1:7317', { kind: 'flag', flag: '--server' })).toBe('http://127.0.0.1:7317/');
    expect(parseServerUrl('https://oz.example/', { kind: 'flag', flag: '--server' })).toBe('https://oz.example/');
  });
});

describe('task tables', () => {
  it.each([
    [0, '0s'],
    [59_999, '59s'],
    [60_000, '1m'],
    [3_599_000, '59m'],
    [3_600_000, '1h'],
    [47 * 3_600_000, '47h'],
    [48 * 3_600_000, '2d'],
    [-5_000, '0s'],
  ])('age of %i ms is %s', (ms, text) => expect(formatAge(ms)).toBe(text));

  const task = (id: string, state: string, owner: TaskJson['owner'], createdAt: string, title: string): TaskJson =>
    ({ id, state, owner, created_at: createdAt, title }) as TaskJson;

  it('has a header and columns as wide as their widest cell', () => {
    const now = new Date('2026-01-01T12:00:00Z');
    const text = formatTaskTable(
      [
        task('aaaaaaaa-0000-0000-0000-000000000001', 'completed', { type: 'USER', id: 1 }, '2026-01-01T11:59:30Z', 'fix the flaky test'),
        task('aaaaaaaa-0000-0000-0000-000000000002', 'queued', { type: 'TEAM', id: 12 }, '2026-01-01T09:00:00Z', 'triage\nissues'),
      ],
      now,
    );
    expect(text.split('\n')).toEqual([
      'ID                                    STATE      OWNER    AGE  TITLE',
      'aaaaaaaa-0000-0000-0000-000000000001  completed  USER 1   30s  fix the flaky test',
      'aaaaaaaa-0000-0000-0000-000000000002  queued     TEAM 12  3h   triage issues',
    ]);
  });

  it('lines event details up whatever the kind', () => {
    const lines = ['assigned', 'worker_disconnected', 'completed'].map((kind, seq) => formatEvent({ seq, at: '2026-01-01T12:00:01.000Z', kind, detail: 'D' }));
    expect(new Set(lines.map((line) => line.indexOf(' D')))).toEqual(new Set([10 + EVENT_KIND_WIDTH]));
    expect(lines[1]).toBe(`12:00:01  ${'worker_disconnected'.padEnd(EVENT_KIND_WIDTH)} D`);
  });

  it('shows each setup phase as its name and how long it took, the durations in one column, a failed one marked', () => {
    const phase = (name: string, latency: number, isError = false) => {
      const data = clientEventBody(name, new Date('2026-01-01T12:00:00Z'), new Date(Date.parse('2026-01-01T12:00:00Z') + latency), isError, randomUUID());
      return formatEvent({ seq: 1, at: '2026-01-01T12:00:09.000Z', kind: 'setup', detail: clientEventDetail(data), data });
    };
    const pad = ' '.repeat(EVENT_KIND_WIDTH - 'setup'.length);
    expect([
      phase('setup_worker_job_create', 84),
      phase('setup_worker_pod_schedule', 1_000),
      phase('setup_worker_sidecar_prep', 12_345),
      phase('setup_worker_setup_command', 7_000, true),
      phase('setup_worker_container_start', 125_000),
      phase('setup_worker_something_new', 0),
    ]).toEqual([
      `12:00:09  setup${pad} Job create           84 ms`,
      `12:00:09  setup${pad} pod scheduling       1.0 s`,
      `12:00:09  setup${pad} sidecar preparation  12.3 s`,
      `12:00:09  setup${pad} setup command        7.0 s  (failed)`,
      `12:00:09  setup${pad} container start      2 min 05 s`,
      `12:00:09  setup${pad} setup_worker_something_new 0 ms`,
    ]);
    // Without its data (an older server), the detail line the server wrote.
    expect(formatEvent({ seq: 1, at: '2026-01-01T12:00:09.000Z', kind: 'setup', detail: 'image pull took 1.2 s' })).toBe(
      `12:00:09  setup${pad} image pull took 1.2 s`,
    );
  });

  it.each([
    [0, '0 ms'],
    [999, '999 ms'],
    [1_000, '1.0 s'],
    [24_598, '24.5 s'],
    [59_999, '59.9 s'],
    [60_000, '1 min 00 s'],
    [3_725_000, '62 min 05 s'],
  ])('a setup phase of %i ms reads %s', (ms, text) => {
    expect(formatLatency(ms)).toBe(text);
  });

  it('words the history line of a phase', () => {
    const start = new Date('2026-01-01T12:00:00Z');
    expect(clientEventDetail(clientEventBody('setup_worker_image_pull', start, new Date(start.getTime() + 1_234), false, randomUUID()))).toBe(
      'image pull took 1.2 s',
    );
    expect(clientEventDetail(clientEventBody('setup_worker_container_start', start, new Date(start.getTime() + 400), true, randomUUID()))).toBe(
      'container start failed after 400 ms',
    );
  });
});

describe('failure details', () => {
  const base = { schema_version: 1, observation_source: 'pod_watch', observed_at: '2026-11-22T12:00:03.123Z' };

  it.each([
    {
      name: 'an OOM kill with its pod and events',
      kubernetes: {
        ...base,
        job: { name: 'oz-task-t1-exec-e1', uid: 'j', conditions: [{ type: 'FailureTarget', status: 'False' }] },
        pod: {
          name: 'oz-task-t1-exec-e1-x7k2p',
          phase: 'Failed',
          reason: 'Evicted',
          conditions: [
            { type: 'PodScheduled', status: 'True' },
            { type: 'Ready', status: 'False', reason: 'PodFailed' },
            { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet' },
          ],
        },
        container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'OOMKilled', raw_exit_code: 137, normalized_exit_code: 137 },
        events: [
          { type: 'Warning', reason: 'FailedMount', count: 2 },
          { type: 'Normal', reason: 'Killing', count: 1 },
        ],
      },
      lines: [
        'kubernetes, seen by pod_watch at 12:00:03',
        'job oz-task-t1-exec-e1',
        'pod oz-task-t1-exec-e1-x7k2p: Failed (Evicted); Ready=False (PodFailed), DisruptionTarget (TerminationByKubelet)',
        'container task (regular): terminated OOMKilled, exit 137 (signal 9)',
        'events: 2× Warning FailedMount, Normal Killing',
      ],
    },
    {
      name: 'a signal the runtime reported, a Job deadline, cut details',
      kubernetes: {
        ...base,
        observation_source: 'job_watch',
        job: { name: 'j1', conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded' }] },
        pod: { name: 'p1', phase: 'Running', deletion_timestamp: '2026-11-22T12:00:01Z' },
        container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'Error', raw_exit_code: 0, normalized_exit_code: 143, signal: 15 },
        truncated: true,
      },
      lines: [
        'kubernetes, seen by job_watch at 12:00:03',
        'job j1: Failed (DeadlineExceeded)',
        'pod p1: Running; being deleted since 12:00:01',
        'container task (regular): terminated Error, exit 143 (signal 15)',
        '(cut to fit: more conditions, events or longer reasons than are kept)',
      ],
    },
    {
      name: 'a sidecar that cannot start, no observation (control characters shown safely)',
      kubernetes: {
        schema_version: 1,
        observed_at: '2026-11-22T12:00:03Z',
        container: { kind: 'sidecar', name: 'db', state: 'waiting', waiting_reason: 'ErrImagePull\u001b[2J' },
      },
      lines: ['kubernetes at 12:00:03', 'container db (sidecar): waiting ErrImagePull?[2J'],
    },
  ])('$name', ({ kubernetes, lines }) => {
    expect(formatFailureDetails({ kubernetes })).toEqual(lines);
  });

  it('prints nothing for a task without details', () => {
    expect(formatFailureDetails(null)).toEqual([]);
    expect(formatFailureDetails(undefined)).toEqual([]);
    expect(formatFailureDetails({})).toEqual([]);
  });
});
