import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { createShutdown, REPEATED_SIGNAL_WINDOW_MS, type ShutdownParts } from '../../src/worker/shutdown.js';

/** A shutdown whose task drain never finishes on its own, with a controllable clock. */
function setUp() {
  const exits: number[] = [];
  const events: string[] = [];
  let clock = 1_000_000;
  let releaseDrain: () => void = () => {};
  const parts: ShutdownParts = {
    log: silentLogger(),
    graceMs: 60_000,
    drainTasks: () => {
      events.push('drain');
      return new Promise((resolve) => (releaseDrain = () => resolve({ settled: true })));
    },
    outboxDrained: async () => void events.push('outbox'),
    pendingMessages: () => 0,
    closeConnection: async () => void events.push('close'),
    shutdownBackend: async () => void events.push('backend'),
    exit: (code) => void exits.push(code),
    now: () => clock,
  };
  return { shutdown: createShutdown(parts), exits, events, advance: (ms: number) => (clock += ms), release: () => releaseDrain() };
}

describe('shutdown', () => {
  it('drains, flushes, closes and exits 0', async () => {
    const { shutdown, exits, events, release } = setUp();
    const done = shutdown.begin('SIGTERM');
    release();
    await done;
    expect(events).toEqual(['drain', 'outbox', 'backend', 'close']);
    expect(exits).toEqual([0]);
  });

  it('without delivery (the server is gone) stops the tasks but does not wait for the outbox', async () => {
    const { shutdown, exits, events, release } = setUp();
    const done = shutdown.begin('parent exited', { deliver: false });
    release();
    await done;
    expect(events).toEqual(['drain', 'backend', 'close']);
    expect(exits).toEqual([0]);
  });

  it('treats a stop request right after the first as the same one (npm and the terminal both forward Ctrl-C)', async () => {
    const { shutdown, exits, advance, release } = setUp();
    const done = shutdown.begin('SIGINT');
    advance(REPEATED_SIGNAL_WINDOW_MS - 1);
    await shutdown.begin('SIGINT');
    expect(exits).toEqual([]);
    release();
    await done;
    expect(exits).toEqual([0]);
  });

  it('exits at once with 130 on a later second request', async () => {
    const { shutdown, exits, advance } = setUp();
    void shutdown.begin('SIGINT');
    advance(REPEATED_SIGNAL_WINDOW_MS + 1);
    await shutdown.begin('SIGINT');
    expect(exits).toEqual([130]);
  });
});
