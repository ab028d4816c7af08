// A complete WorkerConfig for tests. The defaults come from the worker's own
// config resolution (one owner), fed with a test API key, a test worker id and a
// fixed host, so a test names only what it is about. Also what the config tests
// ask of a resolved config or a refused one.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import type { FileConfig } from '../../src/config/file-schema.js';
import { resolveWorkerConfig } from '../../src/config/resolve.js';
import type { WorkerConfig, WorkerConfigFor } from '../../src/config/worker-config.js';
import type { BackendName } from '../../src/task/contract.js';

/** Objects may be given in part (recursively); arrays and other values are replaced whole. */
export type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

export const TEST_API_KEY = 'wk_test_key';
export const TEST_WORKER_ID = 'test-worker';

const TEST_HOST = { platform: 'linux', home: '/home/oz-test', uid: 1000 } as const;

/** The smallest config file the backend resolves from: the command backend needs a dispatch command. */
function fileFor(backend: WorkerConfig['backend'] | undefined): FileConfig | undefined {
  return backend === 'command' ? { backend: { command: { dispatch_command: 'exit 0' } } } : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `base` with `overrides` laid over it: a key given as undefined is set to undefined. */
function merged<T>(base: T, overrides: DeepPartial<T> | undefined): T {
  if (!isPlainObject(base) || !isPlainObject(overrides)) return (overrides === undefined ? base : overrides) as T;
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    result[key] = isPlainObject(value) && isPlainObject(result[key]) ? merged(result[key], value) : value;
  }
  return result as T;
}

/**
 * A resolved WorkerConfig for backend `overrides.backend` (default direct; its
 * defaults included: `backend: 'command'` gets a command block) with
 * `overrides` laid over it.
 */
export function testConfig<B extends BackendName = 'direct'>(given?: DeepPartial<WorkerConfigFor<B>> & { backend?: B }): WorkerConfigFor<B> {
  const overrides = (given ?? {}) as DeepPartial<WorkerConfigFor<B>> & { backend?: B };
  const base = resolveWorkerConfig(
    {
      apiKey: TEST_API_KEY,
      workerId: TEST_WORKER_ID,
      ...(overrides.backend ? { backend: overrides.backend } : {}),
      stateDir: join(tmpdir(), 'oz-worker-test-state'),
    },
    fileFor(overrides.backend),
    {},
    () => {
      throw new Error('testConfig reads no files');
    },
    TEST_HOST,
    { lookUp: () => undefined, currentUid: TEST_HOST.uid },
  );
  return merged(base as WorkerConfigFor<B>, overrides as DeepPartial<WorkerConfigFor<B>>);
}

/** The config as backend `backend`'s, after checking it is. */
export function asBackend<B extends BackendName>(config: WorkerConfig, backend: B): WorkerConfigFor<B> {
  expect(config.backend).toBe(backend);
  return config as WorkerConfigFor<B>;
}

/** The message of the ConfigError `run` throws; fails the test when it throws something else or nothing. */
export function configErrorMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}
