// The worker core against a scripted backend: which status messages the server
// sees for each outcome (the Go worker's lifecycle cases, plus our fixes).
import { describe, expect, it, vi } from 'vitest';
import type { Backend, ExecutionOutcome, TaskParams, TaskRun } from '../../src/task/contract.js';
import { testConfig } from '../support/test-config.js';
import { silentLogger } from '../../src/log/logger.js';
import type { OutboundMessage, TaskAssignment } from '../../src/protocol/messages.js';
import { TaskCancelled, TaskFailure, TaskTimedOut } from '../../src/task/failure.js';
import { HANDED_OFF_MAX_ENTRIES, Worker, type AdmissionDecision } from '../../src/worker/worker.js';

type Script = (run: TaskRun) => Promise<ExecutionOutcome>;

function setup(
  options: {
    script?: Script;
    maxConcurrentTasks?: number;
    preserves?: boolean;
    admit?: (a: TaskAssignment) => AdmissionDecision;
    productionParams?: boolean;
  } = {},
) {
  const sent: OutboundMessage[] = [];
  const runs: TaskRun[] = [];
  const cancels: Array<{ taskId: string; executionId: string }> = [];
  const script: Script =
    options.script ??
    ((run) =>
      new Promise((_resolve, reject) => {
        run.signal.addEventListener('abort', () => reject(new TaskCancelled()));
      }));
  const backend: Backend = {
    name: 'direct',
    preservesTasksOnShutdown: options.preserves ?? false,
    executeTask: (run) => {
      runs.push(run);
      return script(run);
    },
    cancelTask: async (ids) => {
      cancels.push(ids);
    },
    shutdown: async () => {},
  };
  const config = testConfig({ workerId: 'w1', maxConcurrentTasks: options.maxConcurrentTasks ?? 0, backend: 'direct' });
  const worker = new Worker({
    config,
    backend,
    log: silentLogger(),
    send: (m) => sent.push(m),
    ...(options.productionParams ? {} : { buildParams: (a: TaskAssignment) => ({ taskId: a.task_id, executionId: a.execution_id ?? '' }) as TaskParams }),
    admit: options.admit,
  });
  return { worker, sent, runs, cancels };
}

const frame = (type: string, data: unknown) => JSON.stringify({ type, data });
const assign = (id: string, extra: Record<string, unknown> = {}) =>
  frame('task_assignment', { task_id: id, execution_id: `exec-${id}`, task: { id, title: 't' }, ...extra });
/** Lets the worker's promise chains run to their end (the fake backend settles without timers). */
const tick = () => new Promise((r) => setImmediate(r));

describe('worker core', () => {
  it('claims, runs and reports completion', async () => {
    const { worker, sent } = setup({ script: async () => ({ kind: 'completed' }) });
    worker.handleFrame(assign('task-1'));
    await tick();
    expect(sent).toEqual([
      { type: 'task_claimed', data: { task_id: 'task-1', worker_id: 'w1' } },
      { type: 'task_completed', data: { task_id: 'task-1', execution_id: 'exec-task-1', message: 'Task completed successfully' } },
    ]);
    expect(worker.taskState('task-1')).toBeUndefined();
  });

  it("echoes the assignment's execution_id in Go's field order, and leaves it out when the assignment had none", async () => {
    const { worker, sent } = setup({
      script: async (run) => {
        if (run.params.taskId === 'done') return { kind: 'completed' };
        throw new TaskFailure('agent_invocation', 'boom', { exitCode: 2 });
      },
    });
    worker.handleFrame(assign('done'));
    worker.handleFrame(assign('broke'));
    worker.handleFrame(frame('task_assignment', { task_id: 'plain', task: { id: 'plain' } }));
    worker.handleFrame(frame('task_assignment', { task_id: 'empty', execution_id: '', task: { id: 'empty' } }));
    await tick();
    const terminal = sent.filter((m) => m.type !== 'task_claimed').map((m) => JSON.stringify(m));
    expect(terminal).toEqual([
      '{"type":"task_completed","data":{"task_id":"done","execution_id":"exec-done","message":"Task completed successfully"}}',
      '{"type":"task_failed","data":{"task_id":"broke","execution_id":"exec-broke","message":"Failed to execute task: boom","failure_reason":"agent_invocation","exit_code":2}}',
      '{"type":"task_failed","data":{"task_id":"plain","message":"Failed to execute task: boom","failure_reason":"agent_invocation","exit_code":2}}',
      '{"type":"task_failed","data":{"task_id":"empty","message":"Failed to execute task: boom","failure_reason":"agent_invocation","exit_code":2}}',
    ]);
  });

  it('reports a backend error as task_failed with reason and exit code', async () => {
    const { worker, sent } = setup({
      script: async () => {
        throw new TaskFailure('agent_invocation', 'oz agent exited with error: exit status 3', { exitCode: 3 });
      },
    });
    worker.handleFrame(assign('task-1'));
    await tick();
    expect(sent[1]).toEqual({
      type: 'task_failed',
      data: {
        task_id: 'task-1',
        execution_id: 'exec-task-1',
        message: 'Failed to execute task: oz agent exited with error: exit status 3',
        failure_reason: 'agent_invocation',
        exit_code: 3,
      },
    });
  });

  it("sends the backend's failure details last, as given; none for a cancellation it caused", async () => {
    const details = {
      kubernetes: { schema_version: 1, observation_source: 'pod_watch', observed_at: '2026-11-22T12:00:00.000Z', pod: { name: 'p', phase: 'Failed' } },
    };
    const { worker, sent } = setup({
      script: async (run) => {
        if (run.params.taskId === 'cancelled') throw new TaskFailure('job_watch', 'watch ended', { cause: new TaskCancelled(), details });
        throw new TaskFailure('container_oom', 'container task exited with code 137', { exitCode: 137, details });
      },
    });
    worker.handleFrame(assign('oom'));
    worker.handleFrame(assign('cancelled'));
    await tick();
    const failed = sent.filter((m) => m.type === 'task_failed');
    expect(failed[0]!.data).toEqual({
      task_id: 'oom',
      execution_id: 'exec-oom',
      message: 'Failed to execute task: container task exited with code 137',
      failure_reason: 'container_oom',
      exit_code: 137,
      failure_details: details,
    });
    expect(Object.keys(failed[0]!.data).at(-1)).toBe('failure_details');
    expect(failed[1]!.data).toMatchObject({ task_id: 'cancelled', failure_reason: 'task_cancelled' });
    expect(failed[1]!.data).not.toHaveProperty('failure_details');
  });

  it('omits exit_code when none was observed and explains deadlines', async () => {
    const { worker, sent } = setup({
      script: async () => {
        throw new TaskTimedOut();
      },
    });
    worker.handleFrame(assign('task-1'));
    await tick();
    expect(sent[1]?.type).toBe('task_failed');
    expect(sent[1]?.data).not.toHaveProperty('exit_code');
    expect((sent[1]!.data as { message: string }).message).toMatch(/exceeded its maximum allowed execution time/);
  });

  it('reports a user cancellation as task_completed CANCELLED and calls the backend', async () => {
    const { worker, sent, cancels } = setup();
    worker.handleFrame(assign('task-1'));
    await tick();
    worker.handleFrame(frame('task_cancellation', { task_id: 'task-1' }));
    await tick();
    expect(sent[1]).toEqual({
      type: 'task_completed',
      data: { task_id: 'task-1', execution_id: 'exec-task-1', message: 'Task cancelled by user request.', task_state: 'CANCELLED' },
    });
    expect(cancels).toEqual([{ taskId: 'task-1', executionId: 'exec-task-1' }]);
  });

  it('does not report CANCELLED for a backend error that merely mentions cancellation', async () => {
    const { worker, sent } = setup({
      script: async () => {
        throw new Error('backend request failed', { cause: new TaskCancelled() });
      },
    });
    worker.handleFrame(assign('task-1'));
    await tick();
    expect(sent[1]?.type).toBe('task_failed');
    expect(sent[1]?.data).toMatchObject({ failure_reason: 'task_cancelled' });
  });

  it('ignores a cancellation for an unknown task', () => {
    const { worker, sent } = setup();
    worker.handleFrame(frame('task_cancellation', { task_id: 'nope' }));
    expect(sent).toEqual([]);
  });

  it('rejects beyond the concurrency limit without starting anything', async () => {
    const { worker, sent, runs } = setup({ maxConcurrentTasks: 1 });
    worker.handleFrame(assign('a'));
    worker.handleFrame(assign('b'));
    await tick();
    expect(runs).toHaveLength(1);
    expect(sent[1]).toEqual({
      type: 'task_rejected',
      data: { task_id: 'b', reason: 'at_capacity: worker at maximum concurrency (1 tasks running)' },
    });
  });

  it('frees the slot when a task ends', async () => {
    let finish!: () => void;
    const { worker, runs } = setup({
      maxConcurrentTasks: 1,
      script: () => new Promise((resolve) => (finish = () => resolve({ kind: 'completed' }))),
    });
    worker.handleFrame(assign('a'));
    await tick();
    finish();
    await tick();
    worker.handleFrame(assign('b'));
    await tick();
    expect(runs.map((r) => r.params.taskId)).toEqual(['a', 'b']);
  });

  it('does not run a live task twice', async () => {
    const { worker, sent, runs } = setup();
    worker.handleFrame(assign('a'));
    worker.handleFrame(assign('a'));
    worker.handleFrame(assign('a', { execution_id: 'other' }));
    await tick();
    expect(runs).toHaveLength(1);
    expect(sent.map((m) => m.type)).toEqual(['task_claimed', 'task_claimed', 'task_rejected']);
    expect((sent[2]!.data as { reason: string }).reason).toMatch(/^already_running: /);
  });

  it('answers an invalid assignment that carries a task_id with task_failed, and keeps working', async () => {
    const { worker, sent } = setup({ script: async () => ({ kind: 'completed' }) });
    worker.handleFrame(frame('task_assignment', { task_id: 'bad', task: null }));
    worker.handleFrame(frame('task_assignment', { task_id: 'bad2', task: { id: 'x', owner: { Type: 'TEAM', Id: 'seven' } } }));
    worker.handleFrame('{not json');
    worker.handleFrame(frame('task_assignment', null));
    worker.handleFrame(frame('heartbeat', {}));
    worker.handleFrame(assign('good'));
    await tick();
    expect(sent.map((m) => [m.type, m.data.task_id])).toEqual([
      ['task_failed', 'bad'],
      ['task_failed', 'bad2'],
      ['task_claimed', 'good'],
      ['task_completed', 'good'],
    ]);
    expect((sent[0]!.data as { message: string }).message).toMatch(/task: .*missing/);
    expect((sent[1]!.data as { message: string }).message).toMatch(/task\.owner\.Id/);
  });

  it('names the execution in the task_failed for an invalid assignment when its execution_id is usable', () => {
    const { worker, sent } = setup();
    const badHead = { id: 'x', agent_config_snapshot: { repository_head_overrides: [{ head: 'main' }] } };
    worker.handleFrame(frame('task_assignment', { task_id: 'bad', EXECUTION_ID: 'exec-9', task: badHead }));
    worker.handleFrame(frame('task_assignment', { task_id: 'bad2', execution_id: 7, task: { id: 'x' } }));
    expect(sent.map((m) => m.data)).toEqual([
      {
        task_id: 'bad',
        execution_id: 'exec-9',
        message: expect.stringMatching(
          /assignment was invalid \(task\.agent_config_snapshot\.repository_head_overrides\.0\.head: expected object, received string\)/,
        ),
        failure_reason: 'unknown',
      },
      { task_id: 'bad2', message: expect.stringMatching(/execution_id: expected string, received number/), failure_reason: 'unknown' },
    ]);
  });

  it('keeps a handed-off task for cancellation routing but sends no terminal message', async () => {
    const { worker, sent, cancels } = setup({ script: async () => ({ kind: 'handedOff' }), maxConcurrentTasks: 1 });
    worker.handleFrame(assign('a'));
    await tick();
    expect(sent.map((m) => m.type)).toEqual(['task_claimed']);
    expect(worker.taskState('a')).toBe('handedOff');
    expect(worker.activeCount).toBe(0);
    worker.handleFrame(frame('task_cancellation', { task_id: 'a' }));
    await tick();
    expect(cancels).toEqual([{ taskId: 'a', executionId: 'exec-a' }]);
    expect(worker.taskState('a')).toBeUndefined();
  });

  it('forgets handed-off tasks after 24 h, oldest first, keeping newer ones for cancellation', async () => {
    const { worker } = setup({ script: async () => ({ kind: 'handedOff' }) });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      worker.handleFrame(assign('old'));
      await tick();
      vi.advanceTimersByTime(23 * 3600_000);
      worker.handleFrame(assign('newer'));
      await tick();
      expect(worker.taskState('old')).toBe('handedOff');
      vi.advanceTimersByTime(2 * 3600_000); // 'old' is 25 h old, 'newer' 2 h
      worker.handleFrame(assign('latest'));
      await tick();
      expect([worker.taskState('old'), worker.taskState('newer'), worker.taskState('latest')]).toEqual([undefined, 'handedOff', 'handedOff']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('routes no cancel to the backend for a handed-off task it forgot', async () => {
    const { worker, cancels } = setup({ script: async () => ({ kind: 'handedOff' }) });
    const realNow = Date.now;
    let now = realNow();
    Date.now = () => now;
    try {
      worker.handleFrame(assign('old'));
      await tick();
      now += 25 * 3600_000;
      worker.handleFrame(assign('new'));
      await tick();
      worker.handleFrame(frame('task_cancellation', { task_id: 'old' }));
      worker.handleFrame(frame('task_cancellation', { task_id: 'new' }));
      await tick();
      expect(cancels).toEqual([{ taskId: 'new', executionId: 'exec-new' }]);
    } finally {
      Date.now = realNow;
    }
  });

  it(`remembers at most ${HANDED_OFF_MAX_ENTRIES} handed-off tasks, forgetting the oldest`, async () => {
    const { worker } = setup({ script: async () => ({ kind: 'handedOff' }) });
    for (let i = 0; i <= HANDED_OFF_MAX_ENTRIES; i++) worker.handleFrame(assign(`t${i}`));
    await tick();
    expect(worker.taskState('t0')).toBe('handedOff');
    worker.handleFrame(assign('last'));
    await tick();
    expect([worker.taskState('t0'), worker.taskState('t1'), worker.taskState('last')]).toEqual([undefined, 'handedOff', 'handedOff']);
  });

  it('runs a handed-off task again when the server assigns it again', async () => {
    const { worker, sent, runs } = setup({ script: async () => ({ kind: 'handedOff' }) });
    worker.handleFrame(assign('a'));
    await tick();
    worker.handleFrame(assign('a', { execution_id: 'second' }));
    await tick();
    expect(runs.map((r) => r.params.executionId)).toEqual(['exec-a', 'second']);
    expect(sent.map((m) => m.type)).toEqual(['task_claimed', 'task_claimed']);
  });

  it('keeps a user cancellation a cancellation when the worker shuts down meanwhile', async () => {
    const { worker, sent } = setup();
    worker.handleFrame(assign('a'));
    await tick();
    worker.handleFrame(frame('task_cancellation', { task_id: 'a' }));
    expect(worker.taskState('a')).toBe('stopping');
    await worker.drain(Date.now() + 1_000);
    expect(sent[1]).toEqual({
      type: 'task_completed',
      data: { task_id: 'a', execution_id: 'exec-a', message: 'Task cancelled by user request.', task_state: 'CANCELLED' },
    });
  });

  it('builds task parameters with the production builder by default, the --mcp token byte-exact', async () => {
    const { worker, runs } = setup({ productionParams: true, script: async () => ({ kind: 'completed' }) });
    worker.handleFrame(
      `{"type":"task_assignment","data":{"task_id":"m","task":{"id":"m","agent_config_snapshot":{"mcp_servers":{"b":{"n":1.0},"a":[1, 2]}}}}}`,
    );
    await tick();
    const params = runs[0]!.params;
    expect(params.mcpServers).toBe('{"a":[1,2],"b":{"n":1.0}}');
    expect(params.args.slice(params.args.indexOf('--mcp'), params.args.indexOf('--mcp') + 2)).toEqual(['--mcp', '{"a":[1,2],"b":{"n":1.0}}']);
  });

  it('rejects with the admission reason before claiming', async () => {
    const { worker, sent, runs } = setup({
      admit: () => ({ accept: false, code: 'owner_out_of_scope', reason: 'owner_out_of_scope: USER 9 is not this device owner (USER 1)' }),
    });
    worker.handleFrame(assign('a'));
    await tick();
    expect(runs).toHaveLength(0);
    expect(sent).toEqual([{ type: 'task_rejected', data: { task_id: 'a', reason: 'owner_out_of_scope: USER 9 is not this device owner (USER 1)' } }]);
    expect(worker.activeCount).toBe(0);
  });

  it('on drain stops tasks, reports graceful_shutdown and rejects new work', async () => {
    const { worker, sent } = setup();
    worker.handleFrame(assign('a'));
    await tick();
    const { settled } = await worker.drain(Date.now() + 1_000);
    expect(settled).toBe(true);
    expect(sent[1]).toMatchObject({ type: 'task_failed', data: { task_id: 'a', failure_reason: 'graceful_shutdown' } });
    worker.handleFrame(assign('b'));
    expect(sent[2]).toMatchObject({ type: 'task_rejected', data: { task_id: 'b' } });
    expect((sent[2]!.data as { reason: string }).reason).toMatch(/^shutting_down: /);
  });

  it('on drain leaves tasks of a preserving backend running', async () => {
    const { worker, runs } = setup({ preserves: true });
    worker.handleFrame(assign('a'));
    await tick();
    await worker.drain(Date.now() + 100);
    expect(runs[0]?.signal.aborted).toBe(false);
  });
});
