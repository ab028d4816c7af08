import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../src/connection/outbox.js';
import { takeAll } from '../support/outbox.js';
import { silentLogger } from '../../src/log/logger.js';
import type { OutboundMessage } from '../../src/protocol/messages.js';
import { Journal, replayJournal } from '../../src/worker/journal.js';
import { tempDir } from '../support/worker-process.js';

const claimed = (id: string): OutboundMessage => ({ type: 'task_claimed', data: { task_id: id, worker_id: 'w' } });
const completed = (id: string): OutboundMessage => ({ type: 'task_completed', data: { task_id: id, message: 'done' } });
const line = (record: object) => JSON.stringify(record);
const HEADER = '{"journal":2}';

describe('replayJournal', () => {
  const cases: { name: string; lines: string[]; expected: ReturnType<typeof replayJournal> }[] = [
    { name: 'an empty log', lines: [HEADER, ''], expected: { outbox: [], liveTaskIds: [] } },
    {
      name: 'a claim written, the outcome pending',
      lines: [HEADER, line({ s: 1, m: claimed('a') }), line({ d: 1 }), line({ s: 2, m: completed('a') }), ''],
      expected: { outbox: [completed('a')], liveTaskIds: [] },
    },
    {
      name: 'a running task whose claim was written',
      lines: [HEADER, line({ s: 1, m: claimed('a') }), line({ d: 1 }), ''],
      expected: { outbox: [], liveTaskIds: ['a'] },
    },
    {
      name: 'a running task carried over by a compaction, then handed off',
      lines: [HEADER, line({ l: 'a' }), line({ l: 'b' }), line({ h: 'a' }), ''],
      expected: { outbox: [], liveTaskIds: ['b'] },
    },
    {
      name: 'a torn last append (the process died while writing)',
      lines: [HEADER, line({ s: 1, m: claimed('a') }), '{"s":2,"m":{"type":"task_compl'],
      expected: { outbox: [claimed('a')], liveTaskIds: ['a'] },
    },
    { name: 'damage before the end', lines: [HEADER, '{"s":1,', line({ d: 1 }), ''], expected: undefined },
    { name: 'a record of an unknown kind', lines: [HEADER, line({ x: 1 }), ''], expected: undefined },
    { name: 'a status the protocol does not know', lines: [HEADER, line({ s: 1, m: { type: 'nope', data: {} } }), ''], expected: undefined },
    { name: 'another file format', lines: ['{"version":1,"outbox":[],"liveTasks":[]}'], expected: undefined },
  ];
  it.each(cases)('$name', ({ lines, expected }) => {
    expect(replayJournal(lines.join('\n'))).toEqual(expected);
  });
});

describe('Journal', () => {
  const dirs: { cleanup(): void }[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => d.cleanup()));

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
    expect(reader.load()).toEqual({ outbox: [completed('b')], liveTaskIds: ['a'] });
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
    expect(previous.liveTaskIds).toEqual(['old']);
    expect(replayJournal(readFileSync(path, 'utf8'))).toEqual({ outbox: [completed('old')], liveTaskIds: [] });
  });

  it('forgets a handed-off task', async () => {
    const { path, outbox, journal } = setUp();
    journal.start();
    outbox.observer = journal;
    outbox.enqueue(claimed('d'));
    journal.handedOff('d');
    await journal.settled();
    expect(replayJournal(readFileSync(path, 'utf8'))?.liveTaskIds).toEqual([]);
  });

  it('stays small over many tasks: the log is compacted once it is mostly history', async () => {
    const { path, outbox, journal } = setUp();
    journal.start();
    outbox.observer = journal;
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
    expect(replayJournal(readFileSync(path, 'utf8'))).toEqual({ outbox: [claimed('last')], liveTaskIds: ['last'] });
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
