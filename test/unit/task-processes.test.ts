// Which processes belong to a task, decided from a /proc snapshot.
import { describe, expect, it } from 'vitest';
import { environHasMark, parseProcStat, selectMembers, type ProcessStat, type TaskSelector } from '../../src/backends/direct/task-processes.js';

const stat = (pid: number, ppid: number, pgrp: number, start = `${pid}00`, state = 'S'): ProcessStat => ({ pid, ppid, pgrp, state, start });

describe('parseProcStat', () => {
  it('reads pid, state, ppid, pgrp and start time, even when the command name holds spaces and parentheses', () => {
    const text = '4242 (my (odd) cmd) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615';
    expect(parseProcStat(text)).toEqual({ pid: 4242, ppid: 1, pgrp: 4240, state: 'S', start: '987654' });
  });
  it.each(['', 'garbage', '12 (x) S 1 2'])('refuses %j', (text) => {
    expect(parseProcStat(text)).toBeUndefined();
  });
});

describe('selectMembers', () => {
  const SELF = 50;
  // 50: the worker; 100: the agent (group leader); 101: its child; 102: a daemon it made with setsid (own
  // group, parent init after the agent exited, found by its mark); 103: the daemon's child; 104: a zombie;
  // 200: unrelated; 201: a child of an unrelated process that carries the mark (its environment is not read);
  // 300: a reused pid.
  const snapshot = [
    stat(SELF, 1, SELF),
    stat(100, SELF, 100),
    stat(101, 100, 100),
    stat(102, 1, 102),
    stat(103, 102, 102),
    stat(104, 100, 100, '10400', 'Z'),
    stat(200, 1, 200),
    stat(201, 200, 200),
    stat(300, 1, 300, 'later'),
  ];
  const marked = new Set([102, 201]);
  const select = (selector: Partial<TaskSelector>, since = 100) =>
    selectMembers(snapshot, { groups: [], roots: [], mark: undefined, ...selector }, (pid) => marked.has(pid), SELF, since).map((s) => s.pid);

  it.each<[string, Partial<TaskSelector>, number[]]>([
    ['a group: its members, not zombies', { groups: [100] }, [100, 101]],
    ['a group and its mark: the daemon and its child too', { groups: [100], mark: 'M=x.' }, [100, 101, 102, 103]],
    ['a root confirmed by its start time, and its descendants', { roots: [{ pid: 100, start: '10000' }] }, [100, 101]],
    ['a root whose pid was reused by another process', { roots: [{ pid: 300, start: '30000' }] }, []],
    ['nothing known', {}, []],
    ['never the worker itself', { groups: [SELF] }, []],
  ])('%s', (_name, selector, expected) => {
    expect(select(selector)).toEqual(expected);
  });

  it("reads every environment when pids wrapped and the task's first pid says nothing", () => {
    expect(select({ groups: [100], mark: 'M=x.' }, 0)).toEqual([100, 101, 102, 103, 201]);
  });

  it("checks the worker's own children for the mark when it is PID 1 (orphans come to it)", () => {
    const asPid1 = [stat(1, 0, 1), stat(100, 1, 100), stat(102, 1, 102)];
    const found = selectMembers(asPid1, { groups: [], roots: [], mark: 'M=x.' }, (pid) => pid === 102, 1, 100).map((s) => s.pid);
    expect(found).toEqual([102]);
  });
});

describe('environHasMark', () => {
  const block = Buffer.from('PATH=/bin\0OZWORKER_TASK_MARK=abc.agent\0XOZWORKER_TASK_MARK=zzz.agent\0');
  it.each([
    ['OZWORKER_TASK_MARK=abc.agent', true],
    ['OZWORKER_TASK_MARK=abc.', true],
    ['OZWORKER_TASK_MARK=abc.setup', false],
    ['OZWORKER_TASK_MARK=ab', false],
    ['OZWORKER_TASK_MARK=zzz.', false], // only a whole entry counts, not the tail of another name
  ])('%s → %s', (entry, expected) => {
    expect(environHasMark(block, entry)).toBe(expected);
  });
});
