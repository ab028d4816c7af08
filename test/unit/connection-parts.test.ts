import { describe, expect, it } from 'vitest';
import { backoffCeiling, backoffDelay } from '../../src/connection/backoff.js';
import { workerSocketUrl } from '../../src/connection/connection.js';
import { Outbox } from '../../src/connection/outbox.js';
import { takeAll } from '../support/outbox.js';

describe('backoff', () => {
  it('doubles from 1 s and caps at 60 s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 20].map((a) => backoffCeiling(a))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });
  it('draws the full jitter range', () => {
    expect(backoffDelay(3, undefined, () => 0)).toBe(0);
    expect(backoffDelay(3, undefined, () => 0.5)).toBe(4_000);
    expect(backoffDelay(3, undefined, () => 1)).toBe(8_000);
  });
});

describe('workerSocketUrl', () => {
  it('sets worker_id and keeps other parameters', () => {
    const url = new URL(workerSocketUrl('wss://example.test/ws?x=1&worker_id=old', 'my worker'));
    expect(url.searchParams.get('worker_id')).toBe('my worker');
    expect(url.searchParams.get('x')).toBe('1');
    expect(url.searchParams.getAll('worker_id')).toHaveLength(1);
  });
});

describe('Outbox', () => {
  const msg = (id: string) => ({ type: 'task_claimed' as const, data: { task_id: id, worker_id: 'w' } });

  it('returns unconfirmed writes to the front, in order', () => {
    const outbox = new Outbox();
    outbox.enqueue(msg('a'));
    outbox.enqueue(msg('b'));
    const first = takeAll(outbox);
    outbox.enqueue(msg('c'));
    outbox.delivered(first[0]!.seq);
    outbox.requeueInFlight();
    expect(takeAll(outbox).map((e) => e.message.data.task_id)).toEqual(['b', 'c']);
  });

  it('hands out a long backlog one entry at a time, oldest first, and keeps order across a reconnect', () => {
    const outbox = new Outbox();
    for (let i = 0; i < 5_000; i++) outbox.enqueue(msg(`t${i}`));
    const taken = Array.from({ length: 3_000 }, () => outbox.takeNext()!);
    expect(taken.map((e) => e.message.data.task_id)).toEqual(Array.from({ length: 3_000 }, (_, i) => `t${i}`));
    for (const entry of taken.slice(0, 2_500)) outbox.delivered(entry.seq);
    expect(outbox.size).toBe(2_500);
    outbox.requeueInFlight(); // the socket closed with 500 writes unconfirmed
    const rest = takeAll(outbox).map((e) => e.message.data.task_id);
    expect(rest).toEqual(Array.from({ length: 2_500 }, (_, i) => `t${i + 2_500}`));
    expect(outbox.takeNext()).toBeUndefined();
  });

  it('tells its observer of each status entering and leaving, once', () => {
    const outbox = new Outbox();
    const events: string[] = [];
    outbox.observer = { enqueued: (e) => events.push(`+${e.seq}`), delivered: (seq) => events.push(`-${seq}`) };
    outbox.enqueue(msg('a'));
    const [entry] = takeAll(outbox);
    outbox.delivered(entry!.seq);
    outbox.delivered(entry!.seq); // a late duplicate callback changes nothing
    expect(events).toEqual(['+1', '-1']);
  });

  it('resolves drained only when everything was confirmed', async () => {
    const outbox = new Outbox();
    outbox.enqueue(msg('a'));
    let drained = false;
    const done = outbox.drained().then(() => (drained = true));
    const [entry] = takeAll(outbox);
    await Promise.resolve();
    expect(drained).toBe(false);
    outbox.delivered(entry!.seq);
    await done;
    expect(drained).toBe(true);
  });

  it('notifies its listener on enqueue', () => {
    const outbox = new Outbox();
    let calls = 0;
    outbox.setListener(() => calls++);
    outbox.enqueue(msg('a'));
    expect(calls).toBe(1);
  });
});
