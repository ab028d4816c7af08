// Chooses and builds the configured backend. Each backend's modules are loaded
// with a dynamic import so only the selected one costs start-up time and memory.
import type { WorkerConfig } from '../config/worker-config.js';
import type { Logger } from '../log/logger.js';
import type { Backend, BackendName } from './backend.js';

export class BackendUnavailable extends Error {}

const NOT_YET: Partial<Record<BackendName, string>> = {
  docker: 'the docker backend is not available in this version yet; use --backend direct, or keep the Go worker for Docker hosts until it lands',
  kubernetes: 'the kubernetes backend is not available in this version yet; use --backend direct, or keep the Go worker for Kubernetes until it lands',
  command: 'the command backend is not available in this version yet; use --backend direct, or keep the Go worker for dispatch commands until it lands',
};

export async function createBackend(config: WorkerConfig, log: Logger): Promise<Backend> {
  switch (config.backend) {
    case 'direct': {
      const { createBackend: create } = await import('./direct/index.js');
      return create(config, { log });
    }
    default:
      throw new BackendUnavailable(NOT_YET[config.backend] ?? `unknown backend "${String(config.backend)}"`);
  }
}
