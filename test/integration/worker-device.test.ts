// Device mode through the real worker: every assignment passes the shared scope
// decision before anything is claimed; out-of-scope work never starts an agent
// and never takes a concurrency slot.
import { afterEach, describe, expect, it } from 'vitest';
import { startDirectWorker, type DirectHarness } from '../support/direct-worker.js';
import { assignment } from '../support/fake-dispatch-server.js';

let harness: DirectHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

const DEVICE_ARGS = ['--device-owner-user-id', '7', '--device-team-id', '3', '--device-id', 'my-mac', '--max-concurrent-tasks', '1'];

describe('device mode', () => {
  it.each([
    ['own user task', { owner: { Type: 'USER', Id: 7 } }, 'accept'],
    ['listed team', { owner: { Type: 'TEAM', Id: 3 } }, 'accept'],
    ['unlisted team', { owner: { Type: 'TEAM', Id: 4 } }, 'owner_out_of_scope'],
    ['another user', { owner: { Type: 'USER', Id: 8 } }, 'owner_out_of_scope'],
    ['no owner', {}, 'invalid_owner'],
    ['null owner', { owner: null }, 'invalid_owner'],
    ['lower-case type', { owner: { Type: 'user', Id: 7 } }, 'invalid_owner'],
  ])('%s → %s', async (_name, task, expected) => {
    harness = await startDirectWorker({ args: DEVICE_ARGS });
    const h = harness;
    await h.server.waitForConnection();
    expect(h.server.handshakes[0]!.url).toContain('device_id=my-mac');
    await h.worker.waitForLog((l) => l.msg === 'Starting oz-worker in device mode: only tasks of user 7 and team 3');
    h.server.assign(assignment('t1', { task }));
    if (expected === 'accept') {
      await h.server.waitForMessage('task_completed', 't1');
      expect(h.server.messagesFor('t1').map((m) => m.type)).toEqual(['task_claimed', 'task_completed']);
      return;
    }
    const rejected = await h.server.waitForMessage('task_rejected', 't1');
    expect(rejected.data.reason).toMatch(new RegExp(`^${expected}: `));
    expect(h.server.messagesFor('t1').map((m) => m.type)).toEqual(['task_rejected']);
    expect(h.record('t1')).toBeUndefined();
    const line = await h.worker.waitForLog((l) => l.taskId === 't1' && /outside this device's scope/.test(l.msg));
    expect(line.msg).toMatch(/user 7 and team 3|has no owner|not a USER or TEAM/);
    // The refused task used no slot: with a limit of one, the next in-scope task still runs.
    h.server.assign(assignment('t2', { task: { owner: { Type: 'USER', Id: 7 } } }));
    await h.server.waitForMessage('task_completed', 't2');
  });

  it('refuses to start with an empty scope', async () => {
    harness = await startDirectWorker({ topYaml: 'device:\n  device_id: my-mac' });
    const exit = await harness.worker.exited;
    expect(exit.code).toBe(2);
    expect(harness.worker.output).toMatch(/device mode needs a scope/);
  });
});

describe('API key from a file', () => {
  it('connects with the key read from --api-key-file and warns when others can read the file', async () => {
    const { API_KEY } = await import('../support/direct-worker.js');
    const { chmodSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tempDir } = await import('../support/worker-process.js');
    const dir = tempDir('keyfile');
    try {
      const keyFile = join(dir.path, 'key');
      writeFileSync(keyFile, `${API_KEY}\n`);
      chmodSync(keyFile, 0o644);
      harness = await startDirectWorker({ args: ['--api-key-file', keyFile], env: { WARP_API_KEY: '' } });
      await harness.server.waitForConnection();
      expect(harness.server.handshakes[0]!.authorization).toBe(`Bearer ${API_KEY}`);
      await harness.worker.waitForLog(
        (l) => l.msg === `the API key file ${keyFile} is accessible to other users (mode 644); restrict it: chmod 600 ${keyFile}`,
      );
      await harness.close();

      chmodSync(keyFile, 0o600);
      harness = await startDirectWorker({ args: ['--api-key-file', keyFile], env: { WARP_API_KEY: '' } });
      await harness.server.waitForConnection();
      await harness.worker.waitForLog((l) => l.msg === 'Starting oz-worker');
      expect(harness.worker.output).not.toContain('accessible to other users');
      expect(harness.worker.output).not.toContain(API_KEY);
    } finally {
      dir.cleanup();
    }
  });
});
