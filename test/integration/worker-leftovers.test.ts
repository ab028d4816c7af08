// Nothing a task started outlives it: not a daemonized descendant, not the
// agent of a worker that was SIGKILLed, not a workspace; and a re-run of a task
// id never loses its workspace to the cleanup of the run before it.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive } from '../support/assertions.js';
import { API_KEY } from '../support/direct-worker.js';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { killQuietly, shellTask, startShellAgentWorker, type ShellAgentHarness } from '../support/shell-agent-worker.js';
import { journalHasStatus, journalRecords } from '../support/journal-file.js';
import { tempDir } from '../support/worker-process.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function harness(options: Parameters<typeof startShellAgentWorker>[0] = {}): Promise<ShellAgentHarness> {
  const h = await startShellAgentWorker(options);
  cleanups.push(() => h.close());
  await h.server.waitForConnection();
  return h;
}

/** A pid the agent wrote to OUT; killed at the end of the test whatever happens. */
async function recordedPid(h: ShellAgentHarness, name: string): Promise<number> {
  const pid = Number((await h.waitForOut(name)).trim());
  cleanups.push(() => killQuietly(pid));
  return pid;
}

// The daemon leaves the agent's process group and session, and lets go of its output pipes.
const DAEMONIZE = 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > "$OUT/daemon.pid"';

describe('a daemonized descendant of the agent', () => {
  it('is stopped when the agent exits and the task ends', async () => {
    const h = await harness();
    h.server.assign(shellTask('daemon-end', `${DAEMONIZE}; exit 0`));
    const daemon = await recordedPid(h, 'daemon.pid');
    await h.server.waitForMessage('task_completed', 'daemon-end');
    await h.server.until(() => !alive(daemon), 10_000, 'the daemonized process to be stopped');
    await h.server.until(() => h.workspaces().length === 0, 10_000, 'the workspace to be removed');
  });

  it('is stopped when the task is cancelled', async () => {
    const h = await harness();
    h.server.assign(shellTask('daemon-cancel', `${DAEMONIZE}; echo $$ > "$OUT/agent.pid"; sleep 60`));
    const daemon = await recordedPid(h, 'daemon.pid');
    const agent = await recordedPid(h, 'agent.pid');
    h.server.cancel('daemon-cancel');
    const done = await h.server.waitForMessage('task_completed', 'daemon-cancel');
    expect(done.data.task_state).toBe('CANCELLED');
    await h.server.until(() => !alive(agent) && !alive(daemon), 10_000, 'the agent and its daemonized process to be stopped');
  });

  it('started by the setup command lives until the task ends, then is stopped', async () => {
    const h = await harness({
      directYaml: `setup_command: 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > "$OUT/setup-daemon.pid"'`,
    });
    h.server.assign(shellTask('setup-daemon', 'kill -0 "$(cat "$OUT/setup-daemon.pid")" && echo yes > "$OUT/seen-by-agent"'));
    const daemon = await recordedPid(h, 'setup-daemon.pid');
    await h.server.waitForMessage('task_completed', 'setup-daemon');
    expect(h.readOut('seen-by-agent')).toBe('yes\n');
    await h.server.until(() => !alive(daemon), 10_000, "the setup command's daemon to be stopped");
  });
});

describe('a worker killed with SIGKILL', () => {
  it('leaves nothing behind after its restart: the agent is stopped, its workspace removed, the task reported once', async () => {
    const server = await FakeDispatchServer.start({ apiKey: API_KEY });
    cleanups.push(() => server.close());
    const state = tempDir('leftover-state');
    cleanups.push(state.cleanup);
    const env = { OZ_WORKER_STATE_DIR: state.path };
    const first = await startShellAgentWorker({ server, env });
    const root = first.root;
    await server.waitForConnection();
    server.assign(shellTask('orphan-1', `echo $$ > "$OUT/agent.pid"; ${DAEMONIZE}; sleep 120 & echo $! > "$OUT/child.pid"; wait`));
    const agent = await recordedPid(first, 'agent.pid');
    const child = await recordedPid(first, 'child.pid');
    const daemon = await recordedPid(first, 'daemon.pid');
    await server.waitForMessage('task_claimed', 'orphan-1');
    // Once the journal's coalesced write holds the claim and where the agent runs, crash.
    await server.until(
      () =>
        journalHasStatus(state.path, 'shell-agent', 'task_claimed', 'orphan-1') &&
        journalRecords(state.path, 'shell-agent').some((record) => record.t === 'orphan-1' && (record.x?.processes?.length ?? 0) > 0),
      10_000,
      'the journal to record orphan-1 and its agent',
    );
    first.worker.signal('SIGKILL');
    await first.worker.exited;
    expect(alive(agent)).toBe(true);
    expect(existsSync(join(first.workspaceRoot, 'orphan-1'))).toBe(true);

    const second = await startShellAgentWorker({ server, env, root });
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    cleanups.push(() => second.close());
    const failed = await server.waitForMessage('task_failed', 'orphan-1');
    expect(failed.data.message).toMatch(/stopped unexpectedly/);
    await server.until(() => !alive(agent) && !alive(child) && !alive(daemon), 10_000, "the previous run's processes to be stopped");
    await server.until(() => !existsSync(join(second.workspaceRoot, 'orphan-1')), 10_000, "the previous run's workspace to be removed");
    // A second report would come soon after the first: give it time to show up.
    await new Promise((r) => setTimeout(r, 500));
    expect(server.messagesFor('orphan-1').filter((m) => m.type === 'task_failed')).toHaveLength(1);
  });
});

describe('a re-run of a task id', () => {
  it("never loses its workspace to the previous run's cleanup, and no workspace is left at the end", async () => {
    const h = await harness({ directYaml: `teardown_command: 'echo started >> "$OUT/teardown"; sleep 1.5'` });
    // The agent marks its workspace and, at its end, fails if the mark was removed under it.
    const agent = 'touch "$PWD/mine"; sleep "$AGENT_SLEEP"; test -e "$PWD/mine" || { echo "workspace removed under the agent" >&2; exit 7; }';
    h.server.assign(shellTask('retry-1', agent, { executionId: 'exec-1', env: { AGENT_SLEEP: '0' } }));
    await h.server.waitForMessage('task_completed', 'retry-1');
    // The re-run arrives while the first run's teardown (and the workspace removal after it) is still to come.
    await h.waitForOut('teardown');
    h.server.assign(shellTask('retry-1', agent, { executionId: 'exec-2', env: { AGENT_SLEEP: '2.5' } }));
    await h.server.until(() => h.server.messagesFor('retry-1').filter((m) => m.type !== 'task_claimed').length === 2, 20_000, 'both runs to end');
    expect(h.server.messagesFor('retry-1').map((m) => m.type)).toEqual(['task_claimed', 'task_completed', 'task_claimed', 'task_completed']);
    await h.server.until(() => h.workspaces().length === 0, 10_000, 'no workspace left');
  });
});
