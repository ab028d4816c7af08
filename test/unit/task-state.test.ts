// The worker's per-task state machine: which transitions it allows, and a stop request's source.
import { describe, expect, it } from 'vitest';
import { canTransition, TaskEntry } from '../../src/worker/task-state.js';

describe('task state machine', () => {
  it.each([
    ['claimed', 'running', true],
    ['running', 'completed', true],
    ['running', 'dispatched', true],
    ['dispatched', 'cancelled', true],
    ['completed', 'failed', false],
    ['failed', 'running', false],
    ['cancelled', 'completed', false],
    ['claimed', 'completed', false],
  ] as const)('%s → %s allowed: %s', (from, to, allowed) => {
    expect(canTransition(from, to)).toBe(allowed);
  });

  it('keeps the first cancellation source', () => {
    const entry = new TaskEntry('t', 'e');
    entry.requestStop('shutdown');
    entry.requestStop('user');
    expect(entry.cancellationSource).toBe('shutdown');
    expect(entry.abort.signal.reason).toBe('shutdown');
  });

  it('refuses an invalid transition', () => {
    const entry = new TaskEntry('t', 'e');
    expect(() => entry.transition('completed')).toThrow(/invalid state transition claimed → completed/);
  });
});
