// One-shot mode in the worker core: exactly one task is taken; every further
// assignment is rejected before any claim; once the task's terminal status is
// queued (and its cleanup done) the worker says it is finished.
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import type { OutboundMessage, TaskAssignment } from '../../src/protocol/messages.js';
import type { Backend, ExecutionOutcome, TaskParams, TaskRun } from '../../src/task/contract.js';
import { TaskCancelled, TaskFailure } from '../../src/task/failure.js';
import { Worker } from '../../src/worker/worker.js';
import { testConfig } from '../support/test-config.js';

type Script = (run: TaskRun) => Promise<ExecutionOutcome>;

function setup(script: Script, oneShot = true) {
  const sent: OutboundMessage[] = [];
  const runs: string[] = [];
  let done = 0;
  // What was sent when the worker said it was done: the status must already be queued.
  let sentWhenDone: OutboundMessage[] | undefined;
  const backend: Backend = {
    name: 'direct',
    preservesTasksOnShutdown: false,
    executeTask: (run) => {
      runs.push(run.params.taskId);
      return script(run);
    },
    shutdown: async () => {},
  };
  const worker = new Worker({
    config: testConfig({ workerId: 'w1', oneShot, maxConcurrentTasks: oneShot ? 1 : 0 }),
    backend,
    log: silentLogger(),
    send: (m) => sent.push(m),
    buildParams: (a: TaskAssignment) => ({ taskId: a.task_id, executionId: a.execution_id ?? '' }) as TaskParams,
    onOneShotDone: () => {
      done++;
      sentWhenDone ??= [...sent];
    },
  });
  return { worker, sent, runs, done: () => done, sentWhenDone: () => sentWhenDone };
}

const assign = (id: string) => JSON.stringify({ type: 'task_assignment', data: { task_id: id, execution_id: `exec-${id}`, task: { id } } });
const tick = () => new Promise((r) => setImmediate(r));

/** A script whose task runs until the test settles it. */
function held() {
  let settle: (outcome: () => ExecutionOutcome) => void = () => {};
  const script: Script = (run) =>
    new Promise((resolve, reject) => {
      run.signal.addEventListener('abort', () => reject(new TaskCancelled()));
      settle = (outcome) => {
        try {
          resolve(outcome());
        } catch (error) {
          reject(error);
        }
      };
    });
  return { script, settle: (outcome: () => ExecutionOutcome) => settle(outcome) };
}

const ONE_SHOT_REJECTION = (taskId: string, reason: string) => ({
  type: 'task_rejected',
  data: { task_id: taskId, reason: `one_shot: this worker runs in one-shot mode and has already taken its one task (${reason}); it takes no other` },
});

describe('one-shot worker', () => {
  it.each([
    ['succeeds', () => ({ kind: 'completed' }) as ExecutionOutcome, 'task_completed'],
    [
      'fails',
      () => {
        throw new TaskFailure('agent_invocation', 'oz agent exited with error: exit status 3', { exitCode: 3 });
      },
      'task_failed',
    ],
  ])(
    'takes one task that %s, rejects a second one sent meanwhile before any claim, and is done once the status is queued',
    async (_name, outcome, terminal) => {
      const task = held();
      const { worker, sent, runs, done, sentWhenDone } = setup(task.script);
      worker.handleFrame(assign('first'));
      await tick();
      worker.handleFrame(assign('second'));
      await tick();
      expect(sent).toEqual([{ type: 'task_claimed', data: { task_id: 'first', worker_id: 'w1' } }, ONE_SHOT_REJECTION('second', 'first')]);
      expect(done()).toBe(0);

      task.settle(outcome);
      await tick();
      expect(sent.map((m) => `${m.type} ${(m.data as { task_id: string }).task_id}`)).toEqual([
        'task_claimed first',
        'task_rejected second',
        `${terminal} first`,
      ]);
      expect(done()).toBe(1);
      expect(sentWhenDone()?.at(-1)?.type).toBe(terminal);
      // After its task, still none: not even the same task again.
      worker.handleFrame(assign('third'));
      worker.handleFrame(assign('first'));
      await tick();
      expect(sent.slice(3)).toEqual([ONE_SHOT_REJECTION('third', 'first'), ONE_SHOT_REJECTION('first', 'first')]);
      expect(runs).toEqual(['first']);
      expect(done()).toBe(1);
    },
  );

  it('is done after a cancelled task too (task_completed CANCELLED)', async () => {
    const task = held();
    const { worker, sent, done } = setup(task.script);
    worker.handleFrame(assign('c1'));
    await tick();
    worker.handleFrame(JSON.stringify({ type: 'task_cancellation', data: { task_id: 'c1' } }));
    await tick();
    expect(sent.at(-1)).toMatchObject({ type: 'task_completed', data: { task_id: 'c1', task_state: 'CANCELLED' } });
    expect(done()).toBe(1);
  });

  it('confirms a re-sent assignment of its running task instead of rejecting it', async () => {
    const task = held();
    const { worker, sent } = setup(task.script);
    worker.handleFrame(assign('r1'));
    await tick();
    worker.handleFrame(assign('r1'));
    await tick();
    expect(sent.map((m) => m.type)).toEqual(['task_claimed', 'task_claimed']);
  });

  it('does not count an assignment it refused as invalid as its task', async () => {
    const { worker, sent, runs } = setup(async () => ({ kind: 'completed' }));
    worker.handleFrame(JSON.stringify({ type: 'task_assignment', data: { task_id: 'bad', task: 'not an object' } }));
    worker.handleFrame(assign('good'));
    await tick();
    expect(sent.map((m) => m.type)).toEqual(['task_failed', 'task_claimed', 'task_completed']);
    expect(runs).toEqual(['good']);
  });

  it('without one-shot mode takes every task and never says it is done', async () => {
    const { worker, sent, done } = setup(async () => ({ kind: 'completed' }), false);
    worker.handleFrame(assign('a'));
    worker.handleFrame(assign('b'));
    await tick();
    expect(sent.filter((m) => m.type === 'task_completed')).toHaveLength(2);
    expect(done()).toBe(0);
  });
});
