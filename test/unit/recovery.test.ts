// Start-up after a crash: what the journal of the previous process turns into.
import { describe, expect, it } from 'vitest';
import { Outbox } from '../../src/connection/outbox.js';
import { silentLogger } from '../../src/log/logger.js';
import type { OutboundMessage } from '../../src/protocol/messages.js';
import type { ResumableTask } from '../../src/task/contract.js';
import { lostTaskFailure, replayJournal, type JournalContents } from '../../src/worker/journal.js';
import { recoverFromJournal } from '../../src/worker/recovery.js';
import { takeAll } from '../support/outbox.js';

const claimed = (id: string): OutboundMessage => ({ type: 'task_claimed', data: { task_id: id, worker_id: 'w' } });
const completed = (id: string): OutboundMessage => ({ type: 'task_completed', data: { task_id: id, message: 'done' } });
const failed = (id: string): OutboundMessage => ({ type: 'task_failed', data: { task_id: id, message: 'no', failure_reason: 'unknown' } });
const resumable = (taskId: string): ResumableTask => ({ taskId, executionId: `exec-${taskId}`, resume: async () => ({ kind: 'completed' }) });

function recover(previous: Pick<JournalContents, 'outbox' | 'liveTaskIds'>, resumed: ResumableTask[] = []): OutboundMessage[] {
  const outbox = new Outbox();
  recoverFromJournal({ leftovers: [], damagedLines: [], ...previous }, resumed, outbox, silentLogger());
  return takeAll(outbox).map((entry) => entry.message);
}

describe('recoverFromJournal', () => {
  it.each<[string, Pick<JournalContents, 'outbox' | 'liveTaskIds'>, ResumableTask[], OutboundMessage[]]>([
    ['nothing left', { outbox: [], liveTaskIds: [] }, [], []],
    ['unsent statuses go out first, in their order', { outbox: [claimed('a'), completed('b')], liveTaskIds: [] }, [], [claimed('a'), completed('b')]],
    ['a running task nothing follows is reported lost', { outbox: [], liveTaskIds: ['a'] }, [], [lostTaskFailure('a')]],
    ['a running task the backend picked up again is left to it', { outbox: [], liveTaskIds: ['a'] }, [resumable('a')], []],
    ['a running task whose completion is among the unsent statuses', { outbox: [completed('a')], liveTaskIds: ['a'] }, [], [completed('a')]],
    ['a running task whose failure is among the unsent statuses', { outbox: [failed('a')], liveTaskIds: ['a'] }, [], [failed('a')]],
    ['an unsent claim does not count as an outcome', { outbox: [claimed('a')], liveTaskIds: ['a'] }, [], [claimed('a'), lostTaskFailure('a')]],
  ])('%s', (_name, previous, resumed, expected) => {
    expect(recover(previous, resumed)).toEqual(expected);
  });

  it('reports nothing for a task handed off before the crash (a journal as earlier versions wrote it)', () => {
    const previous = replayJournal(
      ['{"journal":2}', '{"s":1,"m":{"type":"task_claimed","data":{"task_id":"d","worker_id":"w"}}}', '{"d":1}', '{"h":"d"}', ''].join('\n'),
    )!;
    expect(previous.liveTaskIds).toEqual([]);
    expect(recover(previous)).toEqual([]);
  });
});
