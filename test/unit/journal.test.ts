import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../src/connection/outbox.js';
import { takeAll } from '../support/outbox.js';
import { silentLogger } from '../../src/log/logger.js';
import type { OutboundMessage } from '../../src/protocol/messages.js';
import { describeLines, Journal, replayJournal, type JournalContents, type LiveTask } from '../../src/worker/journal.js';
import { tempDir } from '../support/worker-process.js';

const claimed = (id: string): OutboundMessage => ({ type: 'task_claimed', data: { task_id: id, worker_id: 'w' } });
const completed = (id: string): OutboundMessage => ({ type: 'task_completed', data: { task_id: id, message: 'done' } });
const line = (record: object) => JSON.stringify(record);
const failedWithDetails: OutboundMessage = {
  type: 'task_failed',
  data: {
    task_id: 'f',
    execution_id: 'exec-f',
    message: 'Failed to execute task: container task … exited with code 137',
    failure_reason: 'container_oom',
    exit_code: 137,
    failure_details: {
      kubernetes: {
        schema_version: 1,
        observation_source: 'pod_watch',
        observed_at: '2026-11-22T12:00:00.000Z',
        job: { name: 'oz-task-f-exec-exec-f', uid: 'job-uid', conditions: [{ type: 'Failed', status: 'True', reason: 'PodFailurePolicy' }] },
        pod: { name: 'oz-task-f-exec-exec-f-x7k2p', uid: 'pod-uid', phase: 'Failed' },
        container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'OOMKilled', raw_exit_code: 137, normalized_exit_code: 137 },
        events: [{ type: 'Warning', reason: 'BackOff', count: 2 }],
        truncated: true,
      },
    },
  },
};
const HEADER = '{"journal":2}';

/** A live task by its id alone: one whose execution the journal does not know. */
const live = (tasks: Array<string | LiveTask>): LiveTask[] => tasks.map((t) => (typeof t === 'string' ? { taskId: t, executionId: '' } : t));

/** What a replay returns: statuses, live tasks, and (by default none) leftovers and damaged lines. */
const contents = (outbox: OutboundMessage[], liveTasks: Array<string | LiveTask>, extra: Partial<JournalContents> = {}): JournalContents => ({
  outbox,
  liveTasks: live(liveTasks),
  leftovers: [],
  damagedLines: [],
  ...extra,
});

describe('replayJournal', () => {
  const note = { mark: '0123456789abcdef', processes: [{ pid: 42, start: '1234' }] };
  const cases: { name: string; lines: string[]; expected: ReturnType<typeof replayJournal> }[] = [
    { name: 'an empty log', lines: [HEADER, ''], expected: contents([], []) },
    {
      name: 'a claim written, the outcome pending',
      lines: [HEADER, line({ s: 1, m: claimed('a') }), line({ d: 1 }), line({ s: 2, m: completed('a') }), ''],
      expected: contents([completed('a')], []),
    },
    {
      name: 'a running task whose claim was written',
      lines: [HEADER, line({ s: 1, m: claimed('a') }), line({ d: 1 }), ''],
      expected: contents([], ['a']),
    },
    {
      name: 'a running task carried over by a compaction, then handed off',
      lines: [HEADER, line({ l: 'a' }), line({ l: 'b' }), line({ h: 'a' }), ''],
      expected: contents([], ['b']),
    },
    {
      name: 'a torn last append (the process died while writing)',
      lines: [HEADER, line({ s: 1, m: claimed('a') }), '{"s":2,"m":{"type":"task_compl'],
      expected: contents([claimed('a')], ['a']),
    },
    {
      name: "a leftover note, replaced, and another cleared; they outlive the task's report",
      lines: [
        HEADER,
        line({ s: 1, m: claimed('a') }),
        line({ r: 'k1', t: 'a', x: { mark: 'old' } }),
        line({ r: 'k1', t: 'a', x: note }),
        line({ r: 'k2', t: 'b', x: note }),
        line({ r: 'k2' }),
        line({ s: 2, m: completed('a') }),
        '',
      ],
      expected: contents([claimed('a'), completed('a')], [], { leftovers: [{ key: 'k1', taskId: 'a', note }] }),
    },
    {
      name: 'a status keeps the execution it names; a live task keeps the execution its claim recorded',
      lines: [
        HEADER,
        line({ s: 1, m: claimed('a') }),
        line({ l: 'a', e: 'exec-a' }),
        line({ s: 2, m: { type: 'task_completed', data: { task_id: 'b', execution_id: 'exec-b', message: 'done' } } }),
        line({ l: 'c', e: 7 }),
        '',
      ],
      expected: contents(
        [claimed('a'), { type: 'task_completed', data: { task_id: 'b', execution_id: 'exec-b', message: 'done' } }],
        [{ taskId: 'a', executionId: 'exec-a' }, 'c'],
      ),
    },
    {
      name: 'a task_failed keeps its failure details, to be sent as they were after a crash',
      lines: [HEADER, line({ s: 1, m: failedWithDetails }), ''],
      expected: contents([failedWithDetails], []),
    },
    { name: 'damage before the end', lines: [HEADER, '{"s":1,', line({ d: 1 }), ''], expected: contents([], [], { damagedLines: [2] }) },
    {
      name: 'damaged lines among good ones: each good line still counts',
      lines: [HEADER, line({ l: 'a' }), 'garbage{', line({ l: 'b' }), '\u0000\u0000', line({ s: 1, m: claimed('c') }), ''],
      expected: contents([claimed('c')], ['a', 'b', 'c'], { damagedLines: [3, 5] }),
    },
    { name: 'a damaged header', lines: ['{"jour', line({ l: 'a' }), ''], expected: contents([], ['a'], { damagedLines: [1] }) },
    { name: 'a record of an unknown kind', lines: [HEADER, line({ x: 1 }), ''], expected: contents([], [], { damagedLines: [2] }) },
    { name: 'a JSON value that is no record', lines: [HEADER, '[1]', '7', ''], expected: contents([], [], { damagedLines: [2, 3] }) },
    {
      name: 'a status the protocol does not know',
      lines: [HEADER, line({ s: 1, m: { type: 'nope', data: {} } }), ''],
      expected: contents([], [], { damagedLines: [2] }),
    },
    { name: 'another file format', lines: ['{"version":1,"outbox":[],"liveTasks":[]}'], expected: undefined },
    { name: 'another version of this format', lines: ['{"journal":3}', line({ l: 'a' }), ''], expected: undefined },
  ];
  it.each(cases)('$name', ({ lines, expected }) => {
    expect(replayJournal(lines.join('\n'))).toEqual(expected);
  });

  it.each([
    [[3], 'line 3'],
    [[3, 5], 'lines 3 and 5'],
    [[3, 5, 9], 'lines 3, 5 and 9'],
    [Array.from({ length: 25 }, (_, i) => i + 1), `lines ${Array.from({ length: 20 }, (_, i) => i + 1).join(', ')} and 5 more`],
  ])('names damaged lines %j as %j', (numbers, text) => {
    expect(describeLines(numbers)).toBe(text);
  });
});

describe('Journal', () => {
  const dirs: { cleanup(): void }[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) d.cleanup();
  });

  function setUp() {
    const dir = tempDir('journal-unit');
    dirs.push(dir);
    const path = join(dir.path, 'state', 'w.jsonl');
    const outbox = new Outbox();
    const journal = new Journal(path, () => outbox.entries(), silentLogger());
    return { path, outbox, journal };
  }

  it('records what is pending and running, so a new process can pick up', async () => {
    const { path, outbox, journal } = setUp();
    journal.start();
    outbox.observer = journal;
    outbox.enqueue(claimed('a'));
    outbox.enqueue(claimed('b'));
    for (const entry of takeAll(outbox)) outbox.delivered(entry.seq);
    outbox.enqueue(completed('b'));
    await journal.settled();

    const reader = new Journal(path, () => [], silentLogger());
    expect(reader.load()).toEqual(contents([completed('b')], ['a']));
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('starts a fresh log from what was re-queued, dropping what the previous process had delivered', async () => {
    const { path, outbox, journal } = setUp();
    journal.start();
    writeFileSync(path, [HEADER, line({ s: 7, m: claimed('old') }), line({ d: 7 }), ''].join('\n'));
    const previous = journal.load()!;
    outbox.enqueue(completed('old'));
    journal.start();
    outbox.observer = journal;
    expect(previous.liveTasks).toEqual(live(['old']));
    expect(replayJournal(readFileSync(path, 'utf8'))).toEqual(contents([completed('old')], []));
  });

  it('keeps the execution of a claimed task', async () => {
    const { path, outbox, journal } = setUp();
    journal.start();
    outbox.observer = journal;
    outbox.enqueue(claimed('a'));
    journal.claimed('a', 'exec-a');
    outbox.enqueue(claimed('b'));
    journal.claimed('b', '');
    for (const entry of takeAll(outbox)) outbox.delivered(entry.seq);
    await journal.settled();
    expect(readFileSync(path, 'utf8').split('\n')).toContain('{"l":"a","e":"exec-a"}');
    expect(new Journal(path, () => [], silentLogger()).load()?.liveTasks).toEqual(live([{ taskId: 'a', executionId: 'exec-a' }, 'b']));
  });

  it('forgets a handed-off task', async () => {
    const { path, outbox, journal } = setUp();
    journal.start();
    outbox.observer = journal;
    outbox.enqueue(claimed('d'));
    journal.handedOff('d');
    await journal.settled();
    const text = readFileSync(path, 'utf8');
    // The record journals written by earlier versions hold too: its key must keep reading.
    expect(text.split('\n')).toContain('{"h":"d"}');
    expect(replayJournal(text)?.liveTasks).toEqual([]);
  });

  it('stays small over many tasks: the log is compacted once it is mostly history', async () => {
    const { path, outbox, journal } = setUp();
    journal.start();
    outbox.observer = journal;
    // A task running all along: each compaction keeps it, with its execution.
    outbox.enqueue(claimed('long'));
    journal.claimed('long', 'exec-long');
    for (let i = 0; i < 20_000; i++) {
      outbox.enqueue(claimed(`t${i}`));
      outbox.enqueue(completed(`t${i}`));
      for (const entry of takeAll(outbox)) outbox.delivered(entry.seq);
      if (i % 500 === 0) await journal.settled();
    }
    outbox.enqueue(claimed('last'));
    await journal.settled();
    // Some 3 MB of records were appended; the file holds about the last compaction's worth.
    expect(statSync(path).size).toBeLessThan(1.5 * 1024 * 1024);
    expect(replayJournal(readFileSync(path, 'utf8'))).toEqual(contents([claimed('last')], [{ taskId: 'long', executionId: 'exec-long' }, 'last']));
  });

  it('warns once and carries on when the state directory is not writable', () => {
    const warnings: string[] = [];
    const log = { ...silentLogger(), warn: (_: unknown, msg: string) => void warnings.push(msg) } as unknown as ReturnType<typeof silentLogger>;
    const outbox = new Outbox();
    const journal = new Journal('/dev/null/state/w.jsonl', () => outbox.entries(), log);
    journal.start();
    outbox.observer = journal;
    outbox.enqueue(claimed('a'));
    expect(warnings).toEqual([expect.stringMatching(/Cannot write the worker journal.*--state-dir/)]);
    expect(outbox.size).toBe(1);
  });
});
