// The task state machine: every state (stopping once per source) against every event.
import { describe, expect, it } from 'vitest';
import {
  acceptsCancel,
  isExecuting,
  nextStatus,
  occupiesTaskId,
  TASK_EVENT_TYPES,
  TASK_STATES,
  TaskEntry,
  type TaskEventType,
  type TaskStatus,
} from '../../src/worker/task-state.js';

const claimed: TaskStatus = { state: 'claimed' };
const running: TaskStatus = { state: 'running' };
const stoppingUser: TaskStatus = { state: 'stopping', source: 'user' };
const stoppingShutdown: TaskStatus = { state: 'stopping', source: 'shutdown' };
const handedOff: TaskStatus = { state: 'handedOff' };
const completed: TaskStatus = { state: 'completed' };
const failed: TaskStatus = { state: 'failed' };
const cancelled: TaskStatus = { state: 'cancelled' };

type Cell = TaskStatus | 'ignore' | 'invalid';
const rows: Array<[string, TaskStatus, Record<TaskEventType, Cell>]> = [
  ['claimed', claimed, { start: running, cancel: stoppingUser, shutdown: stoppingShutdown, succeeded: 'invalid', handedOff: 'invalid', threw: failed }],
  ['running', running, { start: 'invalid', cancel: stoppingUser, shutdown: stoppingShutdown, succeeded: completed, handedOff, threw: failed }],
  ['stopping(user)', stoppingUser, { start: 'ignore', cancel: 'ignore', shutdown: 'ignore', succeeded: completed, handedOff, threw: cancelled }],
  ['stopping(shutdown)', stoppingShutdown, { start: 'ignore', cancel: 'ignore', shutdown: 'ignore', succeeded: completed, handedOff, threw: failed }],
  ['handedOff', handedOff, { start: 'invalid', cancel: cancelled, shutdown: 'ignore', succeeded: 'invalid', handedOff: 'invalid', threw: 'invalid' }],
  ['completed', completed, { start: 'invalid', cancel: 'ignore', shutdown: 'ignore', succeeded: 'invalid', handedOff: 'invalid', threw: 'invalid' }],
  ['failed', failed, { start: 'invalid', cancel: 'ignore', shutdown: 'ignore', succeeded: 'invalid', handedOff: 'invalid', threw: 'invalid' }],
  ['cancelled', cancelled, { start: 'invalid', cancel: 'ignore', shutdown: 'ignore', succeeded: 'invalid', handedOff: 'invalid', threw: 'invalid' }],
];

describe('task state machine', () => {
  it('covers every state and every event', () => {
    expect(new Set(rows.map(([, status]) => status.state))).toEqual(new Set(TASK_STATES));
    for (const [, , cells] of rows) expect(Object.keys(cells).sort()).toEqual([...TASK_EVENT_TYPES].sort());
  });

  const cases = rows.flatMap(([name, status, cells]) => TASK_EVENT_TYPES.map((event) => [name, event, status, cells[event]] as const));
  it.each(cases)('%s + %s', (_name, event, status, expected) => {
    expect(nextStatus(status, { type: event })).toEqual(expected);
  });

  it.each([
    ['claimed', true, true, true],
    ['running', true, true, true],
    ['stopping', true, true, true],
    ['handedOff', true, true, false],
    ['completed', false, false, false],
    ['failed', false, false, false],
    ['cancelled', false, false, false],
  ] as const)('%s: occupies its task id %s, accepts a cancel %s, executing %s', (state, occupies, cancels, executing) => {
    expect([occupiesTaskId(state), acceptsCancel(state), isExecuting(state)]).toEqual([occupies, cancels, executing]);
  });
});

describe('task entry', () => {
  it('aborts with the first stop source and keeps it', () => {
    const entry = new TaskEntry('t', 'e');
    entry.apply({ type: 'start' });
    entry.apply({ type: 'shutdown' });
    entry.apply({ type: 'cancel' });
    expect(entry.status).toEqual({ state: 'stopping', source: 'shutdown' });
    expect(entry.abort.signal.reason).toBe('shutdown');
    expect(entry.apply({ type: 'threw' })).toEqual({ state: 'failed' });
    expect(entry.occupiesTaskId).toBe(false);
  });

  it('does not abort a task that is handed off or done', () => {
    const entry = new TaskEntry('t', 'e');
    entry.apply({ type: 'start' });
    entry.apply({ type: 'handedOff' });
    entry.apply({ type: 'shutdown' });
    expect(entry.abort.signal.aborted).toBe(false);
    entry.apply({ type: 'cancel' });
    expect(entry.state).toBe('cancelled');
    expect(entry.abort.signal.aborted).toBe(false);
  });

  it('refuses an event its state cannot take', () => {
    const entry = new TaskEntry('t', 'e');
    expect(() => entry.apply({ type: 'succeeded' })).toThrow(/task t: invalid event succeeded in state claimed/);
    expect(entry.state).toBe('claimed');
  });
});
