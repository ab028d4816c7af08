// Start-up after a crash: what the journal of the previous process turns into.
import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/connection/outbox.js';
import { silentLogger } from '../../src/log/logger.js';
import type { OutboundMessage } from '../../src/protocol/messages.js';
import type { ResumableTask } from '../../src/task/contract.js';
import { lostTaskFailure, replayJournal, type JournalContents, type LiveTask } from '../../src/worker/journal.js';
import { recoverFromJournal } from '../../src/worker/recovery.js';
import { takeAll } from '../support/outbox.js';

const claimed = (id: string): OutboundMessage => ({ type: 'task_claimed', data: { task_id: id, worker_id: 'w' } });
const completed = (id: string): OutboundMessage => ({ type: 'task_completed', data: { task_id: id, message: 'done' } });
const failed = (id: string): OutboundMessage => ({ type: 'task_failed', data: { task_id: id, message: 'no', failure_reason: 'unknown' } });
const running = (taskId: string, executionId = ''): LiveTask => ({ taskId, executionId });
const resumable = (taskId: string): ResumableTask => ({ taskId, executionId: `exec-${taskId}`, resume: async () => ({ kind: 'completed' }) });

function recover(previous: Pick<JournalContents, 'outbox' | 'liveTasks'>, resumed: ResumableTask[] = []): OutboundMessage[] {
  const outbox = new Outbox();
  recoverFromJournal({ leftovers: [], damagedLines: [], ...previous }, resumed, outbox, silentLogger());
  return takeAll(outbox).map((entry) => entry.message);
}

describe('recoverFromJournal', () => {
  it.each<[string, Pick<JournalContents, 'outbox' | 'liveTasks'>, ResumableTask[], OutboundMessage[]]>([
    ['nothing left', { outbox: [], liveTasks: [] }, [], []],
    ['unsent statuses go out first, in their order', { outbox: [claimed('a'), completed('b')], liveTasks: [] }, [], [claimed('a'), completed('b')]],
    ['a running task nothing follows is reported lost', { outbox: [], liveTasks: [running('a')] }, [], [lostTaskFailure(running('a'))]],
    ['a running task the backend picked up again is left to it', { outbox: [], liveTasks: [running('a')] }, [resumable('a')], []],
    ['a running task whose completion is among the unsent statuses', { outbox: [completed('a')], liveTasks: [running('a')] }, [], [completed('a')]],
    ['a running task whose failure is among the unsent statuses', { outbox: [failed('a')], liveTasks: [running('a')] }, [], [failed('a')]],
    ['an unsent claim does not count as an outcome', { outbox: [claimed('a')], liveTasks: [running('a')] }, [], [claimed('a'), lostTaskFailure(running('a'))]],
  ])('%s', (_name, previous, resumed, expected) => {
    expect(recover(previous, resumed)).toEqual(expected);
  });

  it("names the lost task's execution, as a live status would", () => {
    expect(recover({ outbox: [], liveTasks: [running('a', 'exec-a'), running('b')] }).map((m) => JSON.stringify(m))).toEqual([
      expect.stringMatching(/^\{"type":"task_failed","data":\{"task_id":"a","execution_id":"exec-a","message":"The worker stopped unexpectedly/),
      expect.stringMatching(/^\{"type":"task_failed","data":\{"task_id":"b","message":"The worker stopped unexpectedly/),
    ]);
  });

  it('reports nothing for a task handed off before the crash (a journal as earlier versions wrote it)', () => {
    const previous = replayJournal(
      ['{"journal":2}', '{"s":1,"m":{"type":"task_claimed","data":{"task_id":"d","worker_id":"w"}}}', '{"d":1}', '{"h":"d"}', ''].join('\n'),
    )!;
    expect(previous.liveTasks).toEqual([]);
    expect(recover(previous)).toEqual([]);
  });
});
