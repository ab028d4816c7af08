// Reconnect delays: exponential with full jitter, so a fleet of workers that
// lost the same server does not come back in lock-step.

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000 };

/** The ceiling for the given number of consecutive failed attempts (0-based). */
export function backoffCeiling(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const exponent = Math.min(attempt, 30);
  return Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
}

/** A delay drawn uniformly from [0, ceiling]; `random` is injectable for tests. */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  return Math.round(random() * backoffCeiling(attempt, policy));
}
