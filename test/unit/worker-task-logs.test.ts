// The core's part in task logs, against a scripted backend and a recording
// reporter: the backend gets the task's export, its records are flushed before
// the terminal status, it ends after the cleanup, and tasks a shutdown keeps
// running still send theirs.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import type { TaskLogReporter } from '../../src/observability/task-logs.js';
import type { TaskAssignment } from '../../src/protocol/messages.js';
import type { Backend, ExecutionOutcome, TaskParams, TaskRun } from '../../src/task/contract.js';
import { TaskCancelled, TaskFailure } from '../../src/task/failure.js';
import { Worker } from '../../src/worker/worker.js';
import { testConfig } from '../support/test-config.js';

type Script = (run: TaskRun) => Promise<ExecutionOutcome>;

function setup(script: Script, options: { preserves?: boolean; logs?: boolean } = {}) {
  const timeline: string[] = [];
  const runs: TaskRun[] = [];
  const opened: TaskAssignment[] = [];
  const reporter: TaskLogReporter = {
    closed: new AbortController().signal,
    writer: () => ({ write() {}, end() {} }),
    redact() {},
    event() {},
    flush: async (ms) => void timeline.push(`flush ${ms}`),
    shutdown: async () => void timeline.push('shutdown'),
  };
  const backend: Backend = {
    name: 'kubernetes',
    preservesTasksOnShutdown: options.preserves ?? false,
    executeTask: (run) => {
      runs.push(run);
      return script(run);
    },
    shutdown: async () => {},
  };
  const worker = new Worker({
    config: testConfig({ workerId: 'w1', backend: 'direct' }),
    backend,
    log: silentLogger(),
    send: (m) => timeline.push(m.type === 'task_completed' && m.data.task_state ? 'task_completed CANCELLED' : m.type),
    buildParams: (a: TaskAssignment) => ({ taskId: a.task_id, executionId: a.execution_id ?? '' }) as TaskParams,
    taskLogs: {
      open: async (assignment) => {
        opened.push(assignment);
        return options.logs === false ? undefined : reporter;
      },
    },
  });
  return { worker, timeline, runs, reporter, opened };
}

const assign = (id: string) =>
  JSON.stringify({
    type: 'task_assignment',
    data: { task_id: id, execution_id: `exec-${id}`, task: {}, telemetry_collection: { endpoint: 'https://collector.example/otlp', logging_enabled: true } },
  });
const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

describe('task logs in the worker core', () => {
  it.each([
    ['completed', async () => ({ kind: 'completed' }) as const, 'task_completed'],
    [
      'failed',
      async () => {
        throw new TaskFailure('agent_invocation', 'boom', { exitCode: 2 });
      },
      'task_failed',
    ],
  ])('hands the export to the backend and flushes it (5 s at most) before the %s status', async (_name, script, status) => {
    const { worker, timeline, runs, reporter, opened } = setup(script);
    worker.handleFrame(assign('t1'));
    await settle();
    expect(opened[0]?.telemetry_collection).toEqual({ endpoint: 'https://collector.example/otlp', logging_enabled: true });
    expect(runs[0]!.taskLogs).toBe(reporter);
    expect(timeline).toEqual(['task_claimed', 'flush 5000', status, 'shutdown']);
  });

  it('flushes before the cancelled status', async () => {
    const { worker, timeline } = setup(
      (run) => new Promise((_resolve, reject) => run.signal.addEventListener('abort', () => reject(new TaskCancelled()), { once: true })),
    );
    worker.handleFrame(assign('t1'));
    await settle();
    worker.handleFrame(JSON.stringify({ type: 'task_cancellation', data: { task_id: 't1' } }));
    await settle();
    expect(timeline).toEqual(['task_claimed', 'flush 5000', 'task_completed CANCELLED', 'shutdown']);
  });

  it('ends the export only once the task’s cleanup (a teardown that still prints) is over', async () => {
    let finishCleanup!: () => void;
    const { worker, timeline } = setup(async (run) => {
      run.afterOutcome!(new Promise<void>((resolve) => (finishCleanup = resolve)));
      return { kind: 'completed' };
    });
    worker.handleFrame(assign('t1'));
    await settle();
    expect(timeline).toEqual(['task_claimed', 'flush 5000', 'task_completed']);
    finishCleanup();
    await settle();
    expect(timeline).toEqual(['task_claimed', 'flush 5000', 'task_completed', 'shutdown']);
  });

  it('sends the records of tasks a shutdown keeps running, without stopping them', async () => {
    const { worker, timeline, runs } = setup(() => new Promise(() => {}), { preserves: true });
    worker.handleFrame(assign('t1'));
    await settle();
    await worker.drain(Date.now() + 1_000);
    expect(timeline).toEqual(['task_claimed', 'shutdown']);
    expect(runs[0]!.signal.aborted).toBe(false);
  });

  it('gives the backend no export when the task gets none', async () => {
    const { worker, timeline, runs } = setup(async () => ({ kind: 'completed' }), { logs: false });
    worker.handleFrame(assign('t1'));
    await settle();
    expect(runs[0]!.taskLogs).toBeUndefined();
    expect(timeline).toEqual(['task_claimed', 'task_completed']);
  });
});
