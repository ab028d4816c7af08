// The OZ_WORKER_* variables: one rule for every one of them (empty is unset,
// numbers are whole milliseconds, flags are 1/true or 0/false) and an error
// naming the variable for anything else.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { resolveWorkerConfig } from '../../src/config/resolve.js';
import { readOzWorkerEnv } from '../../src/config/oz-worker-env.js';

describe('readOzWorkerEnv', () => {
  it('is all defaults for an environment without OZ_WORKER_* (and for empty values)', () => {
    const expected = { exitWithParent: false, connectionTuning: {} };
    expect(readOzWorkerEnv({})).toEqual(expected);
    expect(readOzWorkerEnv({ OZ_WORKER_STATE_DIR: '', OZ_WORKER_PING_INTERVAL_MS: '', OZ_WORKER_EXIT_WITH_PARENT: '' })).toEqual(expected);
  });

  it('reads every variable', () => {
    expect(
      readOzWorkerEnv({
        OZ_WORKER_HEALTH_LISTEN: '0.0.0.0:8080',
        OZ_WORKER_STATE_DIR: '/state',
        OZ_WORKER_EXIT_WITH_PARENT: '1',
        OZ_WORKER_PING_INTERVAL_MS: '100',
        OZ_WORKER_PONG_TIMEOUT_MS: '200',
        OZ_WORKER_STABLE_AFTER_MS: '0',
        OZ_WORKER_RECONNECT_INITIAL_MS: '50',
        OZ_WORKER_RECONNECT_MAX_MS: '3000',
      }),
    ).toEqual({
      healthListen: '0.0.0.0:8080',
      stateDir: '/state',
      exitWithParent: true,
      connectionTuning: { pingIntervalMs: 100, pongTimeoutMs: 200, stableAfterMs: 0, reconnectInitialMs: 50, reconnectMaxMs: 3000 },
    });
  });

  it.each([
    ['1', true],
    ['true', true],
    ['TRUE', true],
    ['0', false],
    ['false', false],
  ])('reads flag %j as %s', (text, value) => {
    expect(readOzWorkerEnv({ OZ_WORKER_EXIT_WITH_PARENT: text }).exitWithParent).toBe(value);
  });

  it.each([
    ['OZ_WORKER_PING_INTERVAL_MS', 'abc', 'invalid OZ_WORKER_PING_INTERVAL_MS "abc": use a whole number of milliseconds, e.g. 5000'],
    ['OZ_WORKER_RECONNECT_MAX_MS', '-1', 'invalid OZ_WORKER_RECONNECT_MAX_MS "-1": use a whole number of milliseconds, e.g. 5000'],
    ['OZ_WORKER_PONG_TIMEOUT_MS', '1.5', 'invalid OZ_WORKER_PONG_TIMEOUT_MS "1.5": use a whole number of milliseconds, e.g. 5000'],
    ['OZ_WORKER_EXIT_WITH_PARENT', 'yes', 'invalid OZ_WORKER_EXIT_WITH_PARENT "yes": use 1 or true to turn it on, 0 or false to turn it off'],
  ])('refuses %s=%j', (name, text, message) => {
    expect(() => readOzWorkerEnv({ [name]: text })).toThrow(new ConfigError(message));
  });

  it('is checked when the worker configuration is resolved, before anything starts', () => {
    const env = { WARP_API_KEY: 'k', OZ_WORKER_STABLE_AFTER_MS: '10s' };
    expect(() => resolveWorkerConfig({ workerId: 'w' }, undefined, env)).toThrow(ConfigError);
    const config = resolveWorkerConfig({ workerId: 'w' }, undefined, { WARP_API_KEY: 'k', OZ_WORKER_STABLE_AFTER_MS: '10', OZ_WORKER_EXIT_WITH_PARENT: '1' });
    expect(config.connectionTuning).toEqual({ stableAfterMs: 10 });
    expect(config.exitWithParent).toBe(true);
  });
});
