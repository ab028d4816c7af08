// Chooses and builds the configured backend. Each backend's modules are loaded
// with a dynamic import so only the selected one costs start-up time and memory.
import type { WorkerConfig } from '../config/worker-config.js';
import type { Logger } from '../log/logger.js';
import type { Backend, BackendName } from '../task/contract.js';

export class BackendUnavailable extends Error {}

const NOT_YET: Partial<Record<BackendName, string>> = {};

export async function createBackend(config: WorkerConfig, log: Logger): Promise<Backend> {
  switch (config.backend) {
    case 'direct': {
      const { createBackend: create } = await import('./direct/index.js');
      return create(config, { log });
    }
    case 'docker': {
      const { createBackend: create } = await import('./docker/index.js');
      return create(config, { log });
    }
    case 'command': {
      const { createBackend: create } = await import('./command/index.js');
      return create(config, { log });
    }
    case 'kubernetes': {
      const { createBackend: create } = await import('./kubernetes/index.js');
      return create(config, { log });
    }
    default: {
      // Unreachable for a resolved config (the union is exhausted); kept for one built by hand.
      const name = (config satisfies never as { backend: BackendName }).backend;
      throw new BackendUnavailable(NOT_YET[name] ?? `unknown backend "${String(name)}"`);
    }
  }
}
