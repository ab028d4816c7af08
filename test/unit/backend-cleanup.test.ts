// withCleanup: how a backend's task body and its cleanup are ordered, and who
// waits for the cleanup (the worker through afterOutcome, or the outcome itself).
import { describe, expect, it } from 'vitest';
import { withCleanup } from '../../src/backends/shared/cleanup.js';

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe('withCleanup', () => {
  it('hands the cleanup to afterOutcome and returns the outcome before the cleanup is done', async () => {
    const cleanupGate = gate();
    const events: string[] = [];
    let handed: Promise<void> | undefined;
    const outcome = await withCleanup(
      { afterOutcome: (cleanup) => void (handed = cleanup) },
      async () => {
        events.push('body');
        return 'completed';
      },
      () => {
        events.push('cleanup started');
        return cleanupGate.promise.then(() => void events.push('cleanup done'));
      },
    );
    expect(outcome).toBe('completed');
    expect(events).toEqual(['body', 'cleanup started']);
    cleanupGate.open();
    await handed;
    expect(events).toEqual(['body', 'cleanup started', 'cleanup done']);
  });

  it('without afterOutcome, resolves only after the cleanup is done', async () => {
    const events: string[] = [];
    const outcome = await withCleanup(
      {},
      async () => 'completed',
      async () => {
        await Promise.resolve();
        events.push('cleanup done');
      },
    );
    events.push(`outcome ${outcome}`);
    expect(events).toEqual(['cleanup done', 'outcome completed']);
  });

  it('starts the cleanup when the body fails and rethrows the body error', async () => {
    const events: string[] = [];
    const failure = new Error('agent exited with error');
    const handed: Promise<void>[] = [];
    await expect(
      withCleanup(
        { afterOutcome: (cleanup) => void handed.push(cleanup) },
        async () => {
          throw failure;
        },
        async () => void events.push('cleanup'),
      ),
    ).rejects.toBe(failure);
    expect(events).toEqual(['cleanup']);
    expect(handed).toHaveLength(1);
  });
});
