// What a server sees of the later Go protocol from a real worker (direct
// backend, fake dispatch server): each terminal status names the execution it
// ends, byte for byte as Go writes it, and each dial announces the build.
// (The same after a crash: test/integration/worker-journal.test.ts.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDirectWorker, type DirectHarness } from '../support/direct-worker.js';
import { assignment } from '../support/fake-dispatch-server.js';
import { REPO_ROOT } from '../support/worker-process.js';

let h: DirectHarness;
beforeAll(async () => {
  h = await startDirectWorker();
  await h.server.waitForConnection();
});
afterAll(async () => {
  await h?.close();
});

/** The raw terminal frame the server received for a task. */
async function terminalFrame(taskId: string, type: 'task_completed' | 'task_failed'): Promise<string> {
  await h.server.waitForMessage(type, taskId);
  const frame = h.server.rawFrames.find((text) => text.includes(`"type":"${type}"`) && text.includes(`"task_id":${JSON.stringify(taskId)}`));
  expect(frame).toBeDefined();
  return frame!;
}

describe('execution_id on terminal statuses', () => {
  it('is echoed on task_completed', async () => {
    h.server.assign(assignment('done-1'));
    expect(await terminalFrame('done-1', 'task_completed')).toBe(
      '{"type":"task_completed","data":{"task_id":"done-1","execution_id":"exec-done-1","message":"Task completed successfully"}}',
    );
  });

  it('is echoed on task_failed', async () => {
    h.server.assign(assignment('fail-1', { env_vars: { FAKE_OZ_EXIT: '3' } }));
    expect(await terminalFrame('fail-1', 'task_failed')).toBe(
      '{"type":"task_failed","data":{"task_id":"fail-1","execution_id":"exec-fail-1","message":"Failed to execute task: oz agent exited with error: exit status 3","failure_reason":"agent_invocation","exit_code":3}}',
    );
  });

  it('is echoed on the task_completed of a cancellation', async () => {
    h.server.assign(assignment('cancel-1', { env_vars: { FAKE_OZ_SLEEP_MS: '60000' } }));
    await h.waitForRecord('cancel-1');
    h.server.cancel('cancel-1');
    expect(await terminalFrame('cancel-1', 'task_completed')).toBe(
      '{"type":"task_completed","data":{"task_id":"cancel-1","execution_id":"exec-cancel-1","message":"Task cancelled by user request.","task_state":"CANCELLED"}}',
    );
  });

  it('is left out when the assignment had none', async () => {
    h.server.assign({ task_id: 'plain-1', task: { id: 'plain-1', title: 't' } });
    expect(await terminalFrame('plain-1', 'task_completed')).toBe(
      '{"type":"task_completed","data":{"task_id":"plain-1","message":"Task completed successfully"}}',
    );
  });

  it('is echoed on the task_failed that refuses a malformed repository head override', async () => {
    h.server.assign(assignment('bad-head', { task: { agent_config_snapshot: { repository_head_overrides: [{ repo_name: 'warp', head: 'main' }] } } }));
    const frame = JSON.parse(await terminalFrame('bad-head', 'task_failed')) as { data: Record<string, unknown> };
    expect(frame.data).toEqual({
      task_id: 'bad-head',
      execution_id: 'exec-bad-head',
      message: expect.stringContaining(
        'its assignment was invalid (task.agent_config_snapshot.repository_head_overrides.0.head: expected object, received string)',
      ),
      failure_reason: 'unknown',
    });
    expect(h.record('bad-head')).toBeUndefined();
  });
});

it("announces the worker's version on the upgrade", () => {
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  expect(h.server.handshakes.length).toBeGreaterThan(0);
  expect(h.server.handshakes.map((handshake) => handshake.workerVersion)).toEqual(h.server.handshakes.map(() => version));
});
