// Protocol fuzzing against the running worker: thousands of hostile frames over
// a real socket to the real worker process (direct backend, recording fake
// `oz`), then protocol-level violations (binary, invalid UTF-8, a frame over the
// payload limit). The worker must stay up, answer what it can, reconnect when
// the socket is broken, and keep running tasks.
import fc from 'fast-check';
import type { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeFrame, type DecodedFrame } from '../../src/protocol/decode.js';
import { alive } from '../support/assertions.js';
import { startDirectWorker, type DirectHarness } from '../support/direct-worker.js';
import { assignment } from '../support/fake-dispatch-server.js';
import { damagedTexts, FUZZ_SEED, mutatedFrames, randomBytesText, randomEnvelope, REGRESSION_FRAMES, render } from '../fuzz/frames.js';

/** Frames sent to the running worker; the decoder-level suite covers far more. */
const PROCESS_FRAMES = 3_000;
/** Valid assignments among the fuzz frames that are actually run (each starts an agent process). */
const MAX_RUNNABLE = 20;
const MAX_PAYLOAD = 16 * 1024 * 1024;
const TERMINAL = new Set(['task_completed', 'task_failed']);

let harness: DirectHarness | undefined;
let stderr = '';
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

async function connected(): Promise<DirectHarness> {
  harness = await startDirectWorker();
  stderr = '';
  harness.worker.child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await harness.server.waitForConnection();
  return harness;
}

/** Fails at once (instead of at a deadline) when the worker process died. */
function assertRunning(h: DirectHarness): void {
  const { exitCode, signalCode } = h.worker.child;
  if (exitCode !== null || signalCode !== null) throw new Error(`the worker exited (${exitCode ?? signalCode}); stderr:\n${stderr.slice(-3000)}`);
}

/** What a crash or a dropped promise would leave on stderr. */
const CRASH_TEXT = /unhandled|uncaught|RangeError|TypeError|Maximum call stack|FATAL|\n\s+at /i;

/** The decoder's reading of a frame (the verdict on the worker comes from the process, so a throw here is tolerated). */
function classify(frame: string): DecodedFrame | undefined {
  try {
    return decodeFrame(frame);
  } catch {
    return undefined;
  }
}

/** The frames to send, regression frames first, then the generated kinds interleaved. */
function hostileFrames(): string[] {
  const seed = FUZZ_SEED + 1_000;
  let runnable = 0;
  // Only a few valid assignments are kept (each starts an agent process).
  const keep = (frame: string): boolean => classify(frame)?.kind !== 'assignment' || runnable++ < MAX_RUNNABLE;
  const sets: string[][] = [
    fc.sample(mutatedFrames(5), { seed, numRuns: 500 }).flat().map(render),
    fc.sample(randomEnvelope, { seed: seed + 1, numRuns: 800 }),
    fc.sample(damagedTexts(5), { seed: seed + 2, numRuns: 120 }).flat(),
    fc.sample(fc.string({ unit: 'binary', maxLength: 200 }), { seed: seed + 3, numRuns: 400 }),
    fc.sample(randomBytesText, { seed: seed + 4, numRuns: 400 }),
  ].map((set) => set.filter(keep));
  const frames: string[] = [];
  for (let i = 0; frames.length < PROCESS_FRAMES && sets.some((set) => i < set.length); i++) {
    for (const set of sets) if (i < set.length && frames.length < PROCESS_FRAMES) frames.push(set[i]!);
  }
  return [...REGRESSION_FRAMES, ...frames];
}

describe('running worker under protocol fuzzing', () => {
  it(`survives ${PROCESS_FRAMES} hostile frames, answers each usable task id, and still runs a task`, async () => {
    const h = await connected();
    const pid = h.worker.child.pid!;
    const sent = hostileFrames();
    const runIds = new Set<string>();
    const refusedIds = new Set<string>();
    for (const frame of sent) {
      const decoded = classify(frame);
      if (decoded?.kind === 'assignment') runIds.add(decoded.assignment.task_id);
      if (decoded?.kind === 'invalid' && decoded.type === 'task_assignment' && decoded.taskId) refusedIds.add(decoded.taskId);
    }
    expect(sent.length).toBeGreaterThanOrEqual(PROCESS_FRAMES);
    for (const frame of sent) h.server.send(frame);

    // Every invalid assignment with a usable task id is answered with task_failed
    // (ids shared with a task that ran may legitimately be refused as re-assignments).
    const mustFail = [...refusedIds].filter((id) => !runIds.has(id));
    expect(mustFail.length).toBeGreaterThan(150);
    await h.server.until(
      () => {
        assertRunning(h);
        const failed = new Set(h.server.received.filter((m) => m.type === 'task_failed').map((m) => m.data.task_id));
        return mustFail.every((id) => failed.has(id));
      },
      30_000,
      'task_failed for every invalid assignment with a task id',
    );
    // Every task the worker claimed reaches exactly one terminal status.
    await h.server.until(
      () => {
        assertRunning(h);
        const claimed = new Set(h.server.received.filter((m) => m.type === 'task_claimed').map((m) => String(m.data.task_id)));
        return [...claimed].every((id) => h.server.messagesFor(id).some((m) => TERMINAL.has(m.type)));
      },
      30_000,
      'a terminal status for every claimed task',
    );

    h.server.assign(assignment('after-fuzz'));
    await h.server.waitForMessage('task_completed', 'after-fuzz', 20_000);
    expect(h.server.handshakes).toHaveLength(1); // no frame broke the connection
    expect(h.worker.child.exitCode).toBeNull();
    expect(alive(pid)).toBe(true);
    expect(stderr).not.toMatch(CRASH_TEXT);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 90_000);

  it('drops a binary frame, closes on invalid UTF-8 (1007) and on a frame over the payload limit (1009), reconnects and keeps working', async () => {
    const h = await connected();
    const closeCode = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));

    // A binary frame is ignored; the connection stays up.
    h.server.openSockets[0]!.send(Buffer.from(JSON.stringify({ type: 'task_assignment', data: assignment('bin-1') })), { binary: true });
    h.server.assign(assignment('after-binary'));
    await h.server.waitForMessage('task_completed', 'after-binary');
    expect(h.server.messagesFor('bin-1')).toEqual([]);
    expect(h.server.handshakes).toHaveLength(1);

    // A text frame that is not UTF-8 breaks the protocol: the worker closes with 1007 and dials again.
    let socket = h.server.openSockets[0]!;
    let closed = closeCode(socket);
    socket.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    expect(await closed).toBe(1007);
    await h.server.until(() => h.server.handshakes.length >= 2 && h.server.connectionCount >= 1, 15_000, 'a reconnect after 1007');

    // A frame one byte over the limit is refused before it is buffered: 1009, then a reconnect.
    socket = h.server.openSockets[0]!;
    closed = closeCode(socket);
    const filler = 'x'.repeat(MAX_PAYLOAD);
    socket.send(JSON.stringify({ type: 'task_assignment', data: assignment('huge-1', { task: { title: filler } }) }));
    expect(await closed).toBe(1009);
    await h.server.until(() => h.server.handshakes.length >= 3 && h.server.connectionCount >= 1, 15_000, 'a reconnect after 1009');

    h.server.assign(assignment('after-huge'));
    await h.server.waitForMessage('task_completed', 'after-huge');
    expect(h.server.messagesFor('huge-1')).toEqual([]);
    expect(h.worker.child.exitCode).toBeNull();
    expect(stderr).not.toMatch(CRASH_TEXT);
    // The worker said why it dropped each connection.
    const errors = h.worker.logs.filter((l) => l.msg.startsWith('WebSocket error')).map((l) => l.msg);
    expect(errors).toEqual([expect.stringMatching(/UTF-8/i), expect.stringMatching(/max payload size exceeded/i)]);
  }, 60_000);
});
