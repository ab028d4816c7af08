// Job builder settings for tests, as the backend would make them from a plain config;
// API objects as the cluster writes them.
import type { V1ContainerStatus } from '@kubernetes/client-node';
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

/** A container status as the kubelet writes it: the image (`image`) and its id, the container id, started, lastState. */
export function kubeletContainerStatus(
  image: string,
  name: string,
  state: NonNullable<V1ContainerStatus['state']>,
  extra: Partial<V1ContainerStatus> = {},
): V1ContainerStatus {
  return {
    name,
    image,
    imageID: `${image.replace(/:[^:/]*$/, '')}@sha256:${'0'.repeat(64)}`,
    containerID: `containerd://${'1'.repeat(64)}`,
    ready: false,
    restartCount: 0,
    started: false,
    state,
    lastState: {},
    ...extra,
  };
}
