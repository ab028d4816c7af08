// One-shot mode, run as a user would: the real worker (through its bin) on the
// direct backend with the recording `oz` stand-in, against the fake dispatch
// server. It takes one task, rejects a second one sent while the first runs,
// delivers the first one's terminal status (reconnecting if it must) and exits
// 0 with its journal settled.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { replayJournal, journalPath } from '../../src/worker/journal.js';
import { startDirectWorker, type DirectHarness } from '../support/direct-worker.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { FakeDockerEngine } from '../support/fake-docker-engine.js';
import { startWorker, tempDir } from '../support/worker-process.js';

let harness: DirectHarness | undefined;
const cleanups: Array<() => void> = [];
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function oneShotWorker(options: { args?: string[]; topYaml?: string } = {}): Promise<{ h: DirectHarness; stateDir: string }> {
  const state = tempDir('one-shot-state');
  cleanups.push(state.cleanup);
  harness = await startDirectWorker({ env: { OZ_WORKER_STATE_DIR: state.path }, ...options });
  await harness.server.waitForConnection();
  return { h: harness, stateDir: state.path };
}

/** Nothing left to deliver and no task live: what the next start would find. */
function journalSettled(stateDir: string): void {
  const contents = replayJournal(readFileSync(journalPath(stateDir, 'it-worker'), 'utf8'));
  expect(contents).toMatchObject({ outbox: [], liveTasks: [], leftovers: [] });
}

const ONE_SHOT_REASON = /^one_shot: this worker runs in one-shot mode and has already taken its one task \(first\); it takes no other$/;

describe('one-shot worker on the direct backend', () => {
  it.each([
    ['succeeds', {}, 'task_completed'],
    ['fails', { FAKE_OZ_EXIT: '3' }, 'task_failed'],
  ])(
    'runs one task that %s, rejects a second one sent while it runs, delivers the status and exits 0',
    async (_name, env, terminal) => {
      const { h, stateDir } = await oneShotWorker({ topYaml: 'one_shot: true' });
      await h.worker.waitForLog((line) => line.msg === 'Starting oz-worker in one-shot mode: it runs one task, then exits');
      h.server.assign(assignment('first', { env_vars: { FAKE_OZ_SLEEP_MS: '1500', ...env } }));
      await h.server.waitForMessage('task_claimed', 'first');
      h.server.assign(assignment('second'));
      const rejected = await h.server.waitForMessage('task_rejected', 'second');
      expect(rejected.data.reason).toMatch(ONE_SHOT_REASON);

      await h.server.waitForMessage(terminal, 'first');
      const exit = await h.worker.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      // The second task was never claimed nor started.
      expect(h.server.messagesFor('second').map((m) => m.type)).toEqual(['task_rejected']);
      expect(h.record('second')).toBeUndefined();
      expect(h.server.messagesFor('first').map((m) => m.type)).toEqual(['task_claimed', terminal]);
      if (terminal === 'task_failed') expect(h.server.messagesFor('first')[1]?.data).toMatchObject({ exit_code: 3, failure_reason: 'agent_invocation' });
      journalSettled(stateDir);
    },
    30_000,
  );

  it('takes --one-shot=true on the command line; with the server away when the task ends, delivers the status once it is back, then exits 0', async () => {
    const { h, stateDir } = await oneShotWorker({ args: ['--one-shot=true'] });
    h.server.assign(assignment('first', { env_vars: { FAKE_OZ_SLEEP_MS: '1000' } }));
    await h.server.waitForMessage('task_claimed', 'first');
    // The server goes away while the task runs and refuses the worker until after the task is over.
    h.server.refuseWith = 503;
    h.server.dropConnections();
    await h.worker.waitForLog((line) => line.msg === 'One-shot mode: the task is over; delivering its status and exiting');
    expect(h.server.received.some((m) => m.type === 'task_completed')).toBe(false);
    expect(h.worker.child.exitCode).toBeNull();
    h.server.refuseWith = undefined;
    await h.server.waitForMessage('task_completed', 'first');
    expect(await h.worker.exited).toEqual({ code: 0, signal: null });
    journalSettled(stateDir);
  }, 30_000);

  it('warns once at start-up about a Go key it ignores, and runs', async () => {
    const { h } = await oneShotWorker({
      topYaml: ['one_shot: true', 'debug_log_capture:', '  directory: /tmp/oz-debug', '  max_concurrent_uploads: 2'].join('\n'),
    });
    h.server.assign(assignment('first'));
    await h.server.waitForMessage('task_completed', 'first');
    expect(await h.worker.exited).toEqual({ code: 0, signal: null });
    const warnings = h.worker.logs.filter((line) => line.msg.includes('debug_log_capture'));
    expect(warnings.map((line) => [line.level, line.msg])).toEqual([
      [
        40,
        "config file key debug_log_capture is ignored: oz-worker does not implement it (it configures the Go worker's debug log archives for the server's debug_archive_logs_requested frames, which oz-worker does not implement); remove it to silence this warning",
      ],
    ]);
  }, 30_000);

  it('refuses --one-shot on a backend whose tasks outlive the worker at start-up, naming the flag and the backend', async () => {
    const worker = startWorker({ args: ['--worker-id', 'w', '--backend', 'command', '--one-shot'], env: { WARP_API_KEY: 'k' } });
    expect((await worker.exited).code).toBe(2);
    expect(worker.output).toContain(
      '--one-shot is not supported by the command backend: one-shot mode (one task, then exit) works only with the docker or direct backend (remove the flag, or run the docker or direct backend)',
    );
  });
});

describe('one-shot worker on the Docker backend', () => {
  it('takes a Go config pairing one_shot with Docker settings: one container, a second task rejected, the status delivered, exit 0', async () => {
    const server = await FakeDispatchServer.start({ apiKey: 'k' });
    const engine = await FakeDockerEngine.start();
    const dir = tempDir('one-shot-docker');
    cleanups.push(dir.cleanup);
    const config = join(dir.path, 'go.yaml');
    writeFileSync(
      config,
      ['worker_id: w', 'one_shot: true', 'backend:', '  docker:', '    image_pull_policy: IfNotPresent', '    sidecar_image: example.com/warp-agent:1'].join(
        '\n',
      ),
    );
    const worker = startWorker({
      args: ['--config-file', config, '--web-socket-url', server.url],
      env: { WARP_API_KEY: 'k', DOCKER_HOST: engine.dockerHost, HOME: dir.path, OZ_WORKER_STATE_DIR: dir.path },
    });
    try {
      await server.waitForConnection();
      server.assign(assignment('first', { sidecar_image: 'warpdotdev/warp-agent:1', env_vars: { FAKE_RUN: 'forever' } }));
      await server.waitForMessage('task_claimed', 'first');
      server.assign(assignment('second'));
      expect((await server.waitForMessage('task_rejected', 'second')).data.reason).toMatch(/^one_shot: /);
      // The one task ends (its container stopped by the server's cancel), then the worker exits.
      const task = await engine.until(
        () => [...engine.containers.values()].find((c) => c.Name.includes('oz-task-first') && c.status === 'running'),
        20_000,
        'the task container',
      );
      expect(task.Binds.some((bind) => bind.endsWith(':/agent:ro'))).toBe(true);
      server.cancel('first');
      expect((await server.waitForMessage('task_completed', 'first')).data.task_state).toBe('CANCELLED');
      expect(await worker.exited).toEqual({ code: 0, signal: null });
      // One task container; the configured sidecar image replaced the assignment's /agent one.
      const tasks = [...engine.containers.values(), ...engine.removed.values()].filter((c) => c.Name.includes('oz-task-'));
      expect(tasks.map((c) => c.Name)).toEqual([task.Name]);
      expect(engine.requests.some((r) => r.path === '/images/create' && r.query.get('fromImage')?.includes('example.com/warp-agent'))).toBe(true);
      expect(engine.requests.some((r) => r.query.get('fromImage')?.includes('warpdotdev/warp-agent'))).toBe(false);
    } finally {
      await worker.stop();
      await server.close();
      await engine.close();
    }
  }, 60_000);
});
