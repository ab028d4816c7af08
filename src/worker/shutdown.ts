// Graceful shutdown as one injectable unit: stop taking work, let tasks report,
// flush the outbox, close the socket with 1000, and exit — all inside a bounded
// grace period, with a force-exit backstop and "a second signal exits now".
import type { Logger } from '../log/logger.js';
import { settleBefore } from './worker.js';

export interface ShutdownParts {
  log: Logger;
  graceMs: number;
  /** Stops new work and ends (or preserves) running tasks by the deadline. */
  drainTasks: (deadline: number) => Promise<{ settled: boolean }>;
  /** Resolves when every queued status message has been written. */
  outboxDrained: () => Promise<void>;
  pendingMessages: () => number;
  closeConnection: () => Promise<void>;
  shutdownBackend: () => Promise<void>;
  /** Extra cleanup (metrics server, health listener, persistence). */
  closeExtras?: () => Promise<void>;
  exit: (code: number) => void;
  /** Time past the grace period after which the process exits regardless. */
  backstopMs?: number;
  now?: () => number;
}

/**
 * A stop request this soon after the first is the same request: Ctrl-C under
 * `npm start` reaches the worker twice (from the terminal and from npm).
 */
export const REPEATED_SIGNAL_WINDOW_MS = 1_000;

export interface ShutdownOptions {
  /**
   * false: do not wait to deliver statuses (the server is known to be gone);
   * they stay in the journal for the next start.
   */
  deliver?: boolean;
}

export interface Shutdown {
  /** Starts the shutdown on the first call; a later call (not an echo of the first) exits at once. */
  begin(trigger: string, options?: ShutdownOptions): Promise<void>;
  readonly started: boolean;
}

export function createShutdown(parts: ShutdownParts): Shutdown {
  let started = false;
  let finished = false;
  let startedAt = 0;
  const now = parts.now ?? Date.now;
  const run = async (trigger: string, options: ShutdownOptions): Promise<void> => {
    const { log } = parts;
    const deadline = Date.now() + parts.graceMs;
    const backstop = setTimeout(
      () => {
        log.error('Shutdown did not finish within its grace period; exiting now');
        parts.exit(1);
      },
      parts.graceMs + (parts.backstopMs ?? 5_000),
    );
    backstop.unref();

    log.info({ trigger, graceMs: parts.graceMs }, 'Shutting down: no new tasks are accepted');
    const { settled } = await parts.drainTasks(deadline);
    if (!settled) log.warn('Some tasks did not stop within the grace period');
    const flushed = options.deliver === false ? parts.pendingMessages() === 0 : await settleBefore(parts.outboxDrained(), deadline);
    if (!flushed && options.deliver === false) {
      log.warn({ undelivered: parts.pendingMessages() }, 'Status messages not delivered are kept for the next start');
    } else if (!flushed) {
      log.error({ undelivered: parts.pendingMessages() }, 'Status messages could not be delivered before the grace period ended');
    }
    await settleBefore(
      parts.shutdownBackend().catch((error: unknown) => log.warn({ err: String(error) }, 'Backend shutdown failed')),
      Math.max(deadline, Date.now() + 1_000),
    );
    await parts.closeConnection();
    await parts.closeExtras?.().catch(() => undefined);
    log.info('Worker shutdown complete');
    finished = true;
    clearTimeout(backstop);
    parts.exit(flushed ? 0 : 1);
  };
  return {
    get started() {
      return started;
    },
    begin(trigger: string, options: ShutdownOptions = {}): Promise<void> {
      if (started) {
        if (finished) return Promise.resolve();
        if (now() - startedAt < REPEATED_SIGNAL_WINDOW_MS) {
          // Ctrl-C under `npm start` or `oz-worker local` reaches the worker from the terminal and from its parent.
          parts.log.debug({ trigger }, 'Stop request repeated; still shutting down gracefully (send it again to exit at once)');
        } else {
          parts.log.warn({ trigger }, 'Second stop request: exiting immediately');
          parts.exit(130);
        }
        return Promise.resolve();
      }
      started = true;
      startedAt = now();
      return run(trigger, options);
    },
  };
}
