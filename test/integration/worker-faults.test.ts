// Fault tests: the real worker (direct backend, a shell script as the agent)
// against a dispatch server that drops connections, refuses them for a while,
// or stops reading. What must hold is what the server's operator would notice:
// every task's terminal status arrives, once, in the order it was produced, and
// the worker's memory does not run away while it waits.
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReceivedMessage } from '../support/fake-dispatch-server.js';
import { scriptTask, startScriptAgentWorker, type ScriptAgentHarness } from '../support/script-agent-worker.js';
import type { WorkerProcess } from '../support/worker-process.js';

const TERMINAL = new Set(['task_completed', 'task_failed']);
const HEAP_CAP_MIB = 64;
const OUTAGE_MS = 30_000;

let harness: ScriptAgentHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function startWorkerWithScriptAgent(env: Record<string, string> = {}): Promise<ScriptAgentHarness> {
  harness = await startScriptAgentWorker({ env });
  return harness;
}

const task = scriptTask;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds; fails at the deadline, or at once if the worker died. */
async function waitFor(h: ScriptAgentHarness, check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (h.worker.child.exitCode !== null) throw new Error(`the worker exited while waiting for ${what}:\n${h.worker.output.slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function count(messages: ReceivedMessage[], type: string | Set<string>, id: string): number {
  return messages.filter((m) => m.data.task_id === id && (typeof type === 'string' ? m.type === type : type.has(m.type))).length;
}

/** The worker's resident set size in MiB. */
function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** Task ids in the order the worker logged their outcome (it queues the status right after). */
function outcomeOrder(worker: WorkerProcess): string[] {
  return worker.logs.filter((l) => l.msg === 'Task completed' || l.msg === 'Task failed').map((l) => String(l.taskId));
}

describe('worker under connection faults', () => {
  it('delivers each of 200 tasks’ terminal status exactly once while the server drops the connection every second', async () => {
    const h = await startWorkerWithScriptAgent();
    const ids = Array.from({ length: 200 }, (_, i) => `drop-${i}`);
    let drops = 0;
    // Alternate a TCP FIN without a close handshake (abnormal closure) and a 1012 close frame.
    // Neither loses bytes in the network, so a missing or doubled status is the worker's doing.
    const dropper = setInterval(() => {
      if (h.server.connectionCount === 0) return;
      drops++;
      if (drops % 2) h.server.cutConnections();
      else h.server.closeConnections(1012);
    }, 1_000);
    try {
      for (const [i, id] of ids.entries()) {
        await h.server.until(() => h.server.connectionCount > 0, 15_000, 'a connection to send on');
        h.server.assign(task(id, { AGENT_SLEEP: ['0', '0.1', '0.3', '0.6'][i % 4]!, AGENT_EXIT: i % 7 === 0 ? '3' : '0' }));
        await sleep(30); // spreads the assignments over the drops: the load, not a wait for anything
      }
      await h.server.until(() => ids.every((id) => count(h.server.received, TERMINAL, id) > 0), 30_000, 'a terminal status for every task');
      await sleep(500); // room for a late duplicate to show up
    } finally {
      clearInterval(dropper);
    }

    expect(drops).toBeGreaterThanOrEqual(5);
    expect(h.server.handshakes.length).toBeGreaterThanOrEqual(6);
    const received = h.server.received;
    for (const [i, id] of ids.entries()) {
      const mine = received.filter((m) => m.data.task_id === id).map((m) => m.type);
      // The server never re-sent an assignment, so one claim and one outcome, in that order.
      expect(mine, id).toEqual(['task_claimed', i % 7 === 0 ? 'task_failed' : 'task_completed']);
    }
    expect(h.worker.logs.filter((l) => l.msg === 'Starting task execution')).toHaveLength(ids.length);
    expect(h.worker.child.exitCode).toBeNull();
  }, 60_000);

  it('delivers statuses produced while the server refuses connections for 30 s once it accepts again, in order', async () => {
    // A 3 s backoff ceiling instead of the default 60 s keeps the outage short.
    const h = await startWorkerWithScriptAgent({ OZ_WORKER_RECONNECT_INITIAL_MS: '200', OZ_WORKER_RECONNECT_MAX_MS: '3000' });
    const ids = ['out-a', 'out-b', 'out-c', 'out-d', 'out-e', 'out-f'];
    for (const [i, id] of ids.entries()) h.server.assign(task(id, { AGENT_SLEEP: String(1 + 0.3 * ((i * 5) % 6)), AGENT_EXIT: i % 3 === 1 ? '4' : '0' }));
    await h.server.until(() => ids.every((id) => count(h.server.received, 'task_claimed', id) === 1), 10_000, 'every claim');

    h.server.refuseWith = 503;
    h.server.dropConnections();
    const outageStart = Date.now();
    const handshakesAtOutage = h.server.handshakes.length;
    // Every task ends during the outage.
    await waitFor(h, () => outcomeOrder(h.worker).length === ids.length, 25_000, 'every task to end');
    await h.server.until(() => h.server.handshakes.length >= handshakesAtOutage + 3, 25_000, 'refused reconnect attempts');
    // The server stays down for 30 s in all, refusing every attempt.
    await sleep(OUTAGE_MS - (Date.now() - outageStart));
    expect(h.server.handshakes.length).toBeGreaterThanOrEqual(handshakesAtOutage + 10);
    expect(h.server.received.filter((m) => TERMINAL.has(m.type))).toEqual([]);

    h.server.refuseWith = undefined;
    await h.server.until(
      () => ids.every((id) => count(h.server.received, TERMINAL, id) === 1),
      3_000 + 5_000, // the backoff ceiling, plus generous slack
      'every status after the server came back',
    );
    const delivered = h.server.received.filter((m) => TERMINAL.has(m.type)).map((m) => String(m.data.task_id));
    expect(delivered).toEqual(outcomeOrder(h.worker));
    for (const [i, id] of ids.entries()) {
      expect(
        h.server.received.filter((m) => m.data.task_id === id).map((m) => m.type),
        id,
      ).toEqual(['task_claimed', i % 3 === 1 ? 'task_failed' : 'task_completed']);
    }
  }, 90_000);

  it('keeps memory bounded while the server stops reading, then delivers everything once reading resumes', async () => {
    // Left alone, V8 grows its young generation to well over 100 MiB under this
    // allocation rate, which would hide what the worker keeps. Capped (old space
    // 64 MiB, semi-spaces 2 MiB), RSS growth is close to what is retained, and
    // the backlog held more than once would exhaust the heap.
    const h = await startWorkerWithScriptAgent({ NODE_OPTIONS: `--max-old-space-size=${HEAP_CAP_MIB} --max-semi-space-size=2` });
    const pid = h.worker.child.pid!;
    // Warm up so the baseline includes a worker that has run tasks.
    for (let i = 0; i < 20; i++) h.server.assign(task(`warm-${i}`));
    await h.server.until(() => h.server.received.filter((m) => m.type === 'task_completed').length === 20, 15_000, 'warm-up tasks');
    await waitFor(h, () => readdirSync(h.workspaceRoot).length === 0, 10_000, "the warm-up tasks' workspaces to be removed");
    const baseline = rssMiB(pid);

    h.server.pauseReading();
    const received = h.server.received.length;
    // Each refused assignment produces a task_failed of ~400 bytes without starting a process;
    // a few real tasks add claims and completions to the same backlog.
    const refused = Array.from({ length: 30_000 }, (_, i) => `slow-${i}`);
    const real = Array.from({ length: 100 }, (_, i) => `real-${i}`);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 50);
    try {
      refused.forEach((id, i) => {
        h.server.send({ type: 'task_assignment', data: { task_id: id, task: null } });
        if (i % 300 === 0) h.server.assign(task(real[i / 300]!));
      });
      // The worker has produced every status: one log line per refusal, one per finished task.
      await waitFor(
        h,
        () =>
          h.worker.logs.filter((l) => l.msg.startsWith('Refused an invalid task assignment')).length === refused.length &&
          h.worker.logs.filter((l) => l.msg === 'Task completed' && String(l.taskId).startsWith('real-')).length === real.length,
        40_000,
        'the worker to produce every status',
      );
      // The backlog is held for a while: the sampler sees what holding it costs.
      await sleep(300);
      peak = Math.max(peak, rssMiB(pid));
    } finally {
      clearInterval(sampler);
    }
    // Reading really stopped: most of the backlog is still with the worker (or in socket buffers).
    expect(h.server.received.length - received).toBeLessThan(refused.length / 2);
    // ~12 MB of statuses were waiting, under the heap cap, with the journal persisting them.
    expect(h.worker.child.exitCode, h.worker.output.slice(-2000)).toBeNull();
    expect(peak - baseline, `RSS grew from ${baseline.toFixed(0)} MiB to ${peak.toFixed(0)} MiB`).toBeLessThan(100);

    h.server.resumeReading();
    await h.server.until(
      () => h.server.received.filter((m) => m.data.task_id !== undefined && String(m.data.task_id).startsWith('slow-')).length >= refused.length,
      30_000,
      'the backlog after reading resumed',
    );
    await h.server.until(() => real.every((id) => count(h.server.received, 'task_completed', id) === 1), 10_000, 'real tasks');
    await sleep(300); // room for a late duplicate to show up
    const failedBy = new Map<string, number>();
    for (const m of h.server.received) if (m.type === 'task_failed') failedBy.set(String(m.data.task_id), (failedBy.get(String(m.data.task_id)) ?? 0) + 1);
    expect(refused.filter((id) => failedBy.get(id) !== 1)).toEqual([]);
    for (const id of real) expect(h.server.received.filter((m) => m.data.task_id === id).map((m) => m.type)).toEqual(['task_claimed', 'task_completed']);
    expect(h.server.handshakes).toHaveLength(1);
    expect(h.worker.child.exitCode).toBeNull();
  }, 90_000);
});
