// Nothing is forgotten across a crash: after a SIGKILL, the restarted worker
// delivers the statuses it had not sent and reports the task it was running.
import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY, startDirectWorker, type DirectHarness } from '../support/direct-worker.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { journalHasStatus } from '../support/journal-file.js';
import { tempDir } from '../support/worker-process.js';
import { journalPath } from '../../src/worker/journal.js';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp(): Promise<{ server: FakeDispatchServer; stateDir: string; start(): Promise<DirectHarness> }> {
  const server = await FakeDispatchServer.start({ apiKey: API_KEY });
  cleanups.push(() => server.close());
  const state = tempDir('journal');
  cleanups.push(state.cleanup);
  return {
    server,
    stateDir: state.path,
    async start() {
      const harness = await startDirectWorker({ server, env: { OZ_WORKER_STATE_DIR: state.path } });
      cleanups.push(() => harness.close());
      return harness;
    },
  };
}

function killAgent(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

describe('worker journal', () => {
  it('reports a task that was running when the worker was killed as failed, with the reason', async () => {
    const { server, start } = await setUp();
    const first = await start();
    await server.waitForConnection();
    server.assign(assignment('crash-1', { env_vars: { FAKE_OZ_SLEEP_MS: '60000' } }));
    const record = await first.waitForRecord('crash-1');
    cleanups.push(() => killAgent(record.pid));
    await server.waitForMessage('task_claimed', 'crash-1');
    first.worker.signal('SIGKILL');
    await first.worker.exited;

    await start();
    const failed = await server.waitForMessage('task_failed', 'crash-1');
    expect(failed.data.failure_reason).toBe('unknown');
    // The claim did not carry it; the journal kept it, so the server can tell which execution ended.
    expect(failed.data.execution_id).toBe('exec-crash-1');
    expect(failed.data.message).toMatch(/stopped unexpectedly \(it was killed or crashed\) while this task was running/);
    expect(server.messagesFor('crash-1').filter((m) => m.type === 'task_failed')).toHaveLength(1);
  });

  it('delivers a status produced during an outage after a crash and restart', async () => {
    const { server, stateDir, start } = await setUp();
    const first = await start();
    await server.waitForConnection();
    server.assign(assignment('late-1', { env_vars: { FAKE_OZ_SLEEP_MS: '500' } }));
    await server.waitForMessage('task_claimed', 'late-1');
    server.refuseWith = 503;
    server.dropConnections();
    await first.worker.waitForLog((l) => l.msg === 'Task completed' && l.taskId === 'late-1');
    // Once the journal's (coalesced) write holds the status, crash.
    await server.until(() => journalHasStatus(stateDir, 'it-worker', 'task_completed', 'late-1'), 10_000, 'the journal to hold the task_completed of late-1');
    first.worker.signal('SIGKILL');
    await first.worker.exited;
    expect(server.messagesFor('late-1').some((m) => m.type === 'task_completed')).toBe(false);

    server.refuseWith = undefined;
    await start();
    const completed = await server.waitForMessage('task_completed', 'late-1');
    expect(completed.data).toEqual({ task_id: 'late-1', execution_id: 'exec-late-1', message: 'Task completed successfully' });
    expect(server.messagesFor('late-1').filter((m) => m.type === 'task_completed')).toHaveLength(1);
    expect(server.messagesFor('late-1').some((m) => m.type === 'task_failed')).toBe(false);
  });

  it('leaves nothing to recover after a clean shutdown', async () => {
    const { server, start } = await setUp();
    const first = await start();
    await server.waitForConnection();
    server.assign(assignment('clean-1'));
    await server.waitForMessage('task_completed', 'clean-1');
    first.worker.signal('SIGTERM');
    expect((await first.worker.exited).code).toBe(0);
    const second = await start();
    await second.worker.waitForLog((l) => l.msg === 'Connected to dispatch server');
    // Nothing should follow: give a replayed status or a failure report time to show up.
    await new Promise((r) => setTimeout(r, 300));
    expect(server.messagesFor('clean-1').map((m) => m.type)).toEqual(['task_claimed', 'task_completed']);
    expect(second.worker.output).not.toMatch(/stopped unexpectedly|previous worker process/);
  });

  it('loses only a damaged line: the rest is replayed, the lines are named in one warning, the file is kept aside', async () => {
    const { server, stateDir, start } = await setUp();
    const path = journalPath(stateDir, 'it-worker');
    const damaged = ['{"journal":2}', '{"l":"before-damage"}', 'garbage{', '{"l":"after-damage"}', '\u0000\u0000', ''].join('\n');
    writeFileSync(path, damaged, { mode: 0o600 });
    const worker = (await start()).worker;
    for (const taskId of ['before-damage', 'after-damage']) {
      const failed = await server.waitForMessage('task_failed', taskId);
      expect(failed.data.message).toMatch(/stopped unexpectedly/);
    }
    const warnings = worker.logs.filter((l) => l.level === 40 && /journal/i.test(l.msg));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(/lines? 3 and 5\b/);
    const kept = readdirSync(stateDir).filter((name) => name.includes('.damaged-'));
    expect(kept).toHaveLength(1);
    expect(readFileSync(`${stateDir}/${kept[0]}`, 'utf8')).toBe(damaged);
  });
});
