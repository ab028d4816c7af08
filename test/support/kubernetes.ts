// Job builder settings for tests, as the backend would make them from a plain config.
import type { JobSettings } from '../../src/backends/kubernetes/job-builder.js';

export function jobSettings(overrides: Partial<JobSettings> = {}): JobSettings {
  return {
    workerId: 'worker-123',
    namespace: 'agents',
    imagePullPolicy: 'IfNotPresent',
    useImageVolumes: false,
    setupCommand: '',
    teardownCommand: '',
    extraLabels: {},
    extraAnnotations: {},
    activeDeadlineSeconds: 28800,
    ttlSecondsAfterFinished: 86400,
    workspaceSizeLimit: undefined,
    podTemplate: undefined,
    operatorEnv: {},
    ...overrides,
  };
}
