// A log destination that fails never keeps the worker from exiting:
// `oz-worker … | tee log` and Ctrl-C closes the pipe the worker logs into, and a
// reader that stops reading leaves it full. Both through the real bin, with an
// agent that writes output (log lines) as fast as it can.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY } from '../support/direct-worker.js';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { startWorker, tempDir, type WorkerProcess } from '../support/worker-process.js';

const CHATTY_AGENT = '#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo "agent output line $i with some padding to fill the pipe quickly"; done\n';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function chattyWorker(): Promise<{ server: FakeDispatchServer; worker: WorkerProcess }> {
  const server = await FakeDispatchServer.start({ apiKey: API_KEY });
  const dir = tempDir('log-destination');
  const agent = join(dir.path, 'agent.sh');
  writeFileSync(agent, CHATTY_AGENT, { mode: 0o755 });
  const worker = startWorker({
    args: [
      '--worker-id',
      'chatty',
      '--backend',
      'direct',
      '--oz-path',
      agent,
      '--workspace-root',
      join(dir.path, 'ws'),
      '--web-socket-url',
      server.url,
      '--shutdown-grace-period',
      '3s',
    ],
    env: { WARP_API_KEY: API_KEY },
  });
  cleanups.push(async () => {
    if (worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    await worker.exited;
    await server.close();
    dir.cleanup();
  });
  await server.waitForConnection();
  server.assign({ task_id: 'chatty-1', execution_id: 'e1', task: { id: 'chatty-1', title: 't', owner: { Type: 'TEAM', Id: 1 } } });
  await server.waitForMessage('task_claimed', 'chatty-1');
  return { server, worker };
}

/** Once the agent's output reaches the worker's log. */
function outputFlowing(worker: WorkerProcess): Promise<unknown> {
  return worker.waitForLog((line) => line.msg.startsWith('agent output line'));
}

/**
 * Stops reading the worker's stdout and waits until our side's buffer is full:
 * from then on nothing drains the pipe, which the chatty agent fills at once.
 */
async function stopReading(server: FakeDispatchServer, worker: WorkerProcess): Promise<void> {
  const stdout = worker.child.stdout!;
  stdout.pause();
  stdout.removeAllListeners('data');
  await server.until(() => stdout.readableLength >= stdout.readableHighWaterMark, 10_000, "our read buffer of the worker's stdout to fill");
}

/** Resolves with how the process ended, or 'still running' after the bound. */
function endedWithin(worker: WorkerProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'still running'> {
  return Promise.race([worker.exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), ms))]);
}

describe('the worker exits whatever happens to its log destination', () => {
  it('stdout closed by the reader (| tee, Ctrl-C): SIGINT still ends it', async () => {
    const { worker } = await chattyWorker();
    // Once output flows, close the read end as a dying `tee` would.
    await outputFlowing(worker);
    worker.child.kill('SIGINT');
    worker.child.stdout!.destroy();
    // Grace period 3 s plus the backstop: far inside this bound unless something blocks the event loop.
    const ended = await endedWithin(worker, 15_000);
    expect(ended).not.toBe('still running');
  }, 30_000);

  it('a reader that stopped reading (a full pipe): SIGTERM still ends it', async () => {
    const { server, worker } = await chattyWorker();
    await outputFlowing(worker);
    await stopReading(server, worker);
    worker.child.kill('SIGTERM');
    const ended = await endedWithin(worker, 15_000);
    expect(ended).not.toBe('still running');
  }, 30_000);

  it('a full pipe whose reader then goes away while the worker exits: it still ends', async () => {
    const { server, worker } = await chattyWorker();
    await outputFlowing(worker);
    await stopReading(server, worker);
    worker.child.kill('SIGINT');
    // The worker is now exiting with lines it cannot write; it stays stuck so for a while (nothing to
    // wait for: it writes nothing), then the reader goes away (EPIPE from here on).
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    worker.child.stdout!.destroy();
    const ended = await endedWithin(worker, 15_000);
    expect(ended).not.toBe('still running');
  }, 30_000);
});
