// API calls beyond the limit wait, in the order they came (task calls before diagnostics), and every call gets its turn.
import { describe, expect, it } from 'vitest';
import { RequestLimit } from '../../src/backends/kubernetes/request-limit.js';

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('RequestLimit', () => {
  it('runs at most `max` calls at once and starts the waiting ones in order', async () => {
    const limit = new RequestLimit(2);
    const calls = Array.from({ length: 5 }, () => deferred());
    const started: number[] = [];
    const results = calls.map((call, i) =>
      limit.run(async () => {
        started.push(i);
        await call.promise;
        return i;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    expect(limit.load).toEqual({ active: 2, waiting: 3 });
    calls[1]!.resolve();
    await results[1];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    for (const call of calls) call.resolve();
    expect(await Promise.all(results)).toEqual([0, 1, 2, 3, 4]);
    expect(limit.load).toEqual({ active: 0, waiting: 0 });
  });

  it('frees the slot of a call that failed', async () => {
    const limit = new RequestLimit(1);
    await expect(limit.run(() => Promise.reject(new Error('refused')))).rejects.toThrow('refused');
    expect(await limit.run(async () => 'next')).toBe('next');
    expect(limit.load).toEqual({ active: 0, waiting: 0 });
  });

  it('gives a freed slot to a waiting task call before waiting diagnostics calls', async () => {
    const limit = new RequestLimit(1);
    const first = deferred();
    const order: string[] = [];
    const running = limit.run(() => first.promise);
    const diagnostics = limit.run(async () => void order.push('events'), 'diagnostics');
    const task = limit.run(async () => void order.push('delete'), 'task');
    first.resolve();
    await Promise.all([running, diagnostics, task]);
    expect(order).toEqual(['delete', 'events']);
  });
});
