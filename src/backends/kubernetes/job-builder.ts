// The task Job and the start-up preflight Job, built from task params and the
// backend settings. Pure: the same inputs give the same manifest, so it is
// table-tested and validated against the Kubernetes schema in tests.
import type { V1Container, V1EnvVar, V1Job, V1PodSpec, V1ResourceRequirements, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { KubernetesBackendConfig } from '../../config/worker-config.js';
import type { SidecarMount } from '../../protocol/messages.js';
import type { TaskParams } from '../../task/contract.js';
import { TaskFailure } from '../../task/failure.js';
import { executionIdOf, preflightJobName, SETUP_CONTAINER, SIDECAR_COPY_PREFIX, TASK_CONTAINER, taskJobName, taskLabels } from './names.js';
import { ENV_FILE_PATH, SIDECAR_COPY_SCRIPT, TASK_WRAPPER_SCRIPT, WORKSPACE_PATH } from './scripts.js';
import { wellKnownEntries } from '../shared/well-known-env.js';

export type PullPolicy = KubernetesBackendConfig['imagePullPolicy'];

/** The resolved backend settings the Job builder reads (their meaning: KubernetesBackendConfig). */
type KubernetesJobFields =
  | 'namespace'
  | 'imagePullPolicy'
  | 'useImageVolumes'
  | 'setupCommand'
  | 'teardownCommand'
  | 'extraLabels'
  | 'extraAnnotations'
  | 'activeDeadlineSeconds'
  | 'ttlSecondsAfterFinished';

export interface JobSettings extends Pick<KubernetesBackendConfig, KubernetesJobFields> {
  workerId: string;
  workspaceSizeLimit: string | undefined;
  /** The validated `pod_template`; never modified. */
  podTemplate: V1PodSpec | undefined;
  /** The operator's `-e` values for every task. */
  operatorEnv: Record<string, string>;
}

export class SidecarError extends Error {}

/** Checks the sidecar list before anything is created; the first problem wins (reason `sidecar_prep`). */
export function validateSidecars(sidecars: readonly SidecarMount[], useImageVolumes: boolean): void {
  const seen = new Set<string>();
  for (const sidecar of sidecars) {
    if (sidecar.image === '') throw new SidecarError('additional sidecar has empty image');
    if (sidecar.mount_path === '') throw new SidecarError(`additional sidecar ${sidecar.image} has empty mount path`);
    if (sidecar.mount_path === WORKSPACE_PATH) throw new SidecarError(`additional sidecar ${sidecar.image} cannot mount at reserved path ${WORKSPACE_PATH}`);
    if (seen.has(sidecar.mount_path)) throw new SidecarError(`duplicate mount path ${sidecar.mount_path} for additional sidecar ${sidecar.image}`);
    seen.add(sidecar.mount_path);
    if (useImageVolumes && sidecar.read_write) {
      throw new SidecarError(`additional sidecar ${sidecar.image} cannot request a read-write mount: kubernetes image volumes are read-only`);
    }
  }
}

/** `KEY=VALUE` entries merged by key: first appearance keeps its place, the last value wins. */
export function mergeEnv(...lists: (readonly string[])[]): V1EnvVar[] {
  const values = new Map<string, string>();
  for (const list of lists) {
    for (const entry of list) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      values.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
  }
  return [...values].map(([name, value]) => ({ name, value }));
}

/** The task's environment: common env, then `-e` values (sorted), then the four OZ_* values, each with its WARP_* alias. */
export function taskEnvList(params: Pick<TaskParams, 'env' | 'taskId'>, operatorEnv: Record<string, string>): V1EnvVar[] {
  const overrides = Object.keys(operatorEnv)
    .sort()
    .map((key) => `${key}=${operatorEnv[key]}`);
  return mergeEnv(
    params.env,
    overrides,
    wellKnownEntries([
      ['ENVIRONMENT_FILE', ENV_FILE_PATH],
      ['WORKSPACE_ROOT', WORKSPACE_PATH],
      ['WORKER_BACKEND', 'kubernetes'],
      ['RUN_ID', params.taskId],
    ]),
  );
}

/** Requests = limits per positive axis of the instance shape; nothing without a shape. */
export function shapeResources(shape: TaskParams['instanceShape']): V1ResourceRequirements | undefined {
  if (!shape) return undefined;
  const amounts: Record<string, string> = {};
  if (shape.vcpus !== undefined && shape.vcpus > 0) amounts.cpu = String(shape.vcpus);
  if (shape.memory_gb !== undefined && shape.memory_gb > 0) amounts.memory = `${shape.memory_gb}Gi`;
  if (Object.keys(amounts).length === 0) return undefined;
  return { requests: { ...amounts }, limits: { ...amounts } };
}

/** Per resource name, the override's requests/limits replace the base's; other entries stay. */
export function mergeResources(base: V1ResourceRequirements | undefined, override: V1ResourceRequirements | undefined): V1ResourceRequirements | undefined {
  if (!override) return base;
  if (!base) return override;
  return {
    ...base,
    requests: { ...base.requests, ...override.requests },
    limits: { ...base.limits, ...override.limits },
  };
}

/** Template env with the worker's entries: same name replaces in place, new names are appended. */
function mergeContainerEnv(template: V1EnvVar[] | undefined, worker: V1EnvVar[]): V1EnvVar[] {
  const out = (template ?? []).map((entry) => ({ ...entry }));
  for (const entry of worker) {
    const index = out.findIndex((existing) => existing.name === entry.name);
    if (index >= 0) out[index] = entry;
    else out.push(entry);
  }
  return out;
}

interface SidecarParts {
  volumes: V1Volume[];
  mounts: V1VolumeMount[];
  initContainers: V1Container[];
}

function sidecarParts(sidecars: readonly SidecarMount[], settings: Pick<JobSettings, 'useImageVolumes' | 'imagePullPolicy'>): SidecarParts {
  const parts: SidecarParts = { volumes: [], mounts: [], initContainers: [] };
  sidecars.forEach((sidecar, i) => {
    if (settings.useImageVolumes) {
      const name = `sidecar-${i}-image`;
      parts.volumes.push({ name, image: { reference: sidecar.image, pullPolicy: settings.imagePullPolicy } });
      parts.mounts.push({ name, mountPath: sidecar.mount_path, readOnly: true });
      return;
    }
    const name = `sidecar-${i}-data`;
    parts.volumes.push({ name, emptyDir: {} });
    parts.mounts.push({ name, mountPath: sidecar.mount_path, readOnly: !sidecar.read_write });
    parts.initContainers.push({
      name: `${SIDECAR_COPY_PREFIX}${i}`,
      image: sidecar.image,
      imagePullPolicy: settings.imagePullPolicy,
      command: ['/bin/sh', '-c', SIDECAR_COPY_SCRIPT],
      securityContext: { runAsUser: 0, runAsGroup: 0 },
      volumeMounts: [{ name, mountPath: '/target' }],
    });
  });
  return parts;
}

/** The PodSpec of a task: the worker's containers and volumes merged into a copy of `pod_template`. */
export function buildTaskPodSpec(params: TaskParams, settings: JobSettings): V1PodSpec {
  const spec: V1PodSpec = settings.podTemplate ? structuredClone(settings.podTemplate) : { containers: [] };
  const env = taskEnvList(params, settings.operatorEnv);
  const sidecars = sidecarParts(params.sidecars, settings);
  const workspaceMount: V1VolumeMount = { name: 'workspace', mountPath: WORKSPACE_PATH };
  const mounts = [workspaceMount, ...sidecars.mounts];

  const workerInit = [...sidecars.initContainers];
  if (settings.setupCommand !== '') {
    workerInit.push({
      name: SETUP_CONTAINER,
      image: params.image,
      imagePullPolicy: settings.imagePullPolicy,
      command: ['/bin/sh', '-c', settings.setupCommand],
      workingDir: WORKSPACE_PATH,
      env: env.map((entry) => ({ ...entry })),
      volumeMounts: mounts.map((mount) => ({ ...mount })),
    });
  }

  spec.restartPolicy = 'Never';
  const initContainers = [...workerInit, ...(spec.initContainers ?? [])];
  if (initContainers.length > 0) spec.initContainers = initContainers;
  else delete spec.initContainers;
  spec.volumes = [
    ...(spec.volumes ?? []),
    { name: 'workspace', emptyDir: settings.workspaceSizeLimit ? { sizeLimit: settings.workspaceSizeLimit } : {} },
    ...sidecars.volumes,
  ];

  const shape = shapeResources(params.instanceShape);
  const lifecycle = settings.teardownCommand !== '' ? { preStop: { exec: { command: ['/bin/sh', '-c', settings.teardownCommand] } } } : undefined;
  const containers = spec.containers ?? [];
  const templateTask = containers.find((container) => container.name === TASK_CONTAINER);
  if (templateTask) {
    templateTask.image = params.image;
    templateTask.command = ['/bin/sh', '-c', TASK_WRAPPER_SCRIPT, 'oz-task'];
    templateTask.args = [...params.args];
    templateTask.workingDir = WORKSPACE_PATH;
    templateTask.imagePullPolicy ||= settings.imagePullPolicy;
    templateTask.volumeMounts = [...(templateTask.volumeMounts ?? []), ...mounts];
    templateTask.env = mergeContainerEnv(templateTask.env, env);
    if (lifecycle) templateTask.lifecycle = lifecycle;
    const resources = mergeResources(templateTask.resources, shape);
    if (resources) templateTask.resources = resources;
  } else {
    const task: V1Container = {
      name: TASK_CONTAINER,
      image: params.image,
      imagePullPolicy: settings.imagePullPolicy,
      command: ['/bin/sh', '-c', TASK_WRAPPER_SCRIPT, 'oz-task'],
      args: [...params.args],
      workingDir: WORKSPACE_PATH,
      env,
      volumeMounts: mounts,
      ...(lifecycle ? { lifecycle } : {}),
      ...(shape ? { resources: shape } : {}),
    };
    containers.push(task);
  }
  spec.containers = containers;
  return spec;
}

/** The task Job: one per execution, never retried by Kubernetes. */
export function buildTaskJob(params: TaskParams, settings: JobSettings): V1Job {
  const executionId = executionIdOf(params.taskId, params.executionId);
  const labels = { ...settings.extraLabels, ...taskLabels(settings.workerId, params.taskId, executionId) };
  const annotations = Object.keys(settings.extraAnnotations).length > 0 ? { ...settings.extraAnnotations } : undefined;
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: taskJobName(params.taskId, executionId),
      namespace: settings.namespace,
      labels,
      ...(annotations ? { annotations } : {}),
    },
    spec: {
      backoffLimit: 0,
      ...(settings.activeDeadlineSeconds !== undefined ? { activeDeadlineSeconds: settings.activeDeadlineSeconds } : {}),
      ...(settings.ttlSecondsAfterFinished !== undefined ? { ttlSecondsAfterFinished: settings.ttlSecondsAfterFinished } : {}),
      template: {
        metadata: { labels: { ...labels }, ...(annotations ? { annotations: { ...annotations } } : {}) },
        spec: buildTaskPodSpec(params, settings),
      },
    },
  };
}

/**
 * The Job the run creates for a task, after the checks the run makes first: a
 * sidecar list Kubernetes cannot mount is refused (TaskFailure, sidecar_prep).
 */
export function taskJobFor(params: TaskParams, settings: JobSettings): V1Job {
  try {
    validateSidecars(params.sidecars, settings.useImageVolumes);
  } catch (error) {
    if (error instanceof SidecarError) throw new TaskFailure('sidecar_prep', error.message);
    throw error;
  }
  return buildTaskJob(params, settings);
}

export interface PreflightSettings {
  workerId: string;
  namespace: string;
  image: string;
  imagePullPolicy: PullPolicy;
  useImageVolumes: boolean;
  resources: V1ResourceRequirements;
  podTemplate: V1PodSpec | undefined;
  /** Extra labels so a preflight Job left behind by a killed worker can be found and removed. */
  labels: Record<string, string>;
  ttlSecondsAfterFinished: number;
}

/**
 * A Job shaped like a task Job in the way that matters to admission: copy mode
 * needs a root init container, image-volume mode needs an image volume.
 */
export function buildPreflightJob(settings: PreflightSettings, nowNs: bigint): V1Job {
  const spec: V1PodSpec = settings.podTemplate ? structuredClone(settings.podTemplate) : { containers: [] };
  spec.restartPolicy = 'Never';
  const base = { image: settings.image, imagePullPolicy: settings.imagePullPolicy, resources: structuredClone(settings.resources) };
  if (settings.useImageVolumes) {
    delete spec.initContainers;
    spec.volumes = [...(spec.volumes ?? []), { name: 'preflight-image', image: { reference: settings.image, pullPolicy: settings.imagePullPolicy } }];
    spec.containers = [
      {
        name: 'main',
        ...base,
        command: ['/bin/sh', '-c', 'test -d /preflight-image'],
        volumeMounts: [{ name: 'preflight-image', mountPath: '/preflight-image', readOnly: true }],
      },
    ];
  } else {
    spec.initContainers = [{ name: 'root-init-preflight', ...base, command: ['/bin/sh', '-c', 'true'], securityContext: { runAsUser: 0, runAsGroup: 0 } }];
    spec.containers = [{ name: 'main', ...base, command: ['/bin/sh', '-c', 'true'] }];
  }
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name: preflightJobName(settings.workerId, nowNs), namespace: settings.namespace, labels: { ...settings.labels } },
    spec: { backoffLimit: 0, ttlSecondsAfterFinished: settings.ttlSecondsAfterFinished, template: { metadata: { labels: { ...settings.labels } }, spec } },
  };
}
