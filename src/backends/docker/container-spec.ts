// Pure decisions of the Docker backend: labels, names, the sidecar list's
// validity, resource limits and the task container's create body.
import { randomBytes } from 'node:crypto';
import { dedupeEnv } from '../../agent/task-env.js';
import type { InstanceShape, SidecarMount } from '../../protocol/messages.js';
import { TaskFailure } from '../../task/failure.js';
import type { TaskParams } from '../../task/contract.js';
import { parseImageRef, sanitizeName } from './reference.js';
import { wellKnownEntries } from '../shared/well-known-env.js';

/** Every container and volume this worker creates carries these labels. */
export const LABEL_PREFIX = 'dev.warp.oz-worker';
export const LABELS = {
  managed: `${LABEL_PREFIX}.managed`,
  workerId: `${LABEL_PREFIX}.worker-id`,
  runId: `${LABEL_PREFIX}.run-id`,
  executionId: `${LABEL_PREFIX}.execution-id`,
  role: `${LABEL_PREFIX}.role`,
  sidecarImage: `${LABEL_PREFIX}.sidecar-image`,
  sidecarImageId: `${LABEL_PREFIX}.sidecar-image-id`,
  /** On a sidecar cache marker: the filled volume it vouches for. */
  sidecarData: `${LABEL_PREFIX}.sidecar-data`,
} as const;

export type Role =
  /** The task's container. */
  | 'task'
  /** A never-started container used to copy a sidecar image's files. */
  | 'sidecar-helper'
  /** A per-task copy of a read-write sidecar. */
  | 'task-sidecar'
  /** A shared read-only sidecar copy (complete only once a marker names it). */
  | 'sidecar-data'
  /** An empty volume whose existence says its `sidecar-data` volume is complete. */
  | 'sidecar-ready';

export function workerLabels(workerId: string, role: Role): Record<string, string> {
  return { [LABELS.managed]: 'true', [LABELS.workerId]: workerId, [LABELS.role]: role };
}

export function taskLabels(workerId: string, params: Pick<TaskParams, 'taskId' | 'executionId'>, role: Role): Record<string, string> {
  return { ...workerLabels(workerId, role), [LABELS.runId]: params.taskId, [LABELS.executionId]: params.executionId };
}

/** A readable, unique container name: `oz-task-<run id>-<random>`. */
export function taskContainerName(taskId: string, random = randomBytes(4).toString('hex')): string {
  const id = sanitizeName(taskId)
    .replace(/^[^a-zA-Z0-9]+/, '')
    .slice(0, 64);
  return `oz-task-${id || 'run'}-${random}`;
}

/** The sidecar list's problems, in the Go worker's words (reason `sidecar_prep`). */
export function validateSidecars(sidecars: readonly SidecarMount[]): void {
  const seen = new Set<string>();
  for (const sidecar of sidecars) {
    if (sidecar.image === '') throw new TaskFailure('sidecar_prep', 'additional sidecar has empty image');
    if (sidecar.mount_path === '') throw new TaskFailure('sidecar_prep', `additional sidecar ${sidecar.image} has empty mount path`);
    if (seen.has(sidecar.mount_path)) {
      throw new TaskFailure('sidecar_prep', `duplicate mount path ${sidecar.mount_path} for additional sidecar ${sidecar.image}`);
    }
    seen.add(sidecar.mount_path);
  }
}

/** The pull error for a reference Docker would refuse. */
export function invalidReferenceText(image: string): string {
  return `failed to pull image ${image}: invalid reference format (expected e.g. ubuntu:22.04 or registry.example.com/team/image:tag)`;
}

/**
 * What the run refuses before it pulls or creates anything, in the order it
 * meets them: the sidecar list, the task image's reference, each sidecar
 * image's reference.
 */
export function checkTaskImages(params: Pick<TaskParams, 'image' | 'sidecars'>): void {
  validateSidecars(params.sidecars);
  if (!parseImageRef(params.image)) throw new TaskFailure('image_pull', invalidReferenceText(params.image));
  for (const sidecar of params.sidecars) {
    if (!parseImageRef(sidecar.image)) {
      throw new TaskFailure('sidecar_prep', `failed to pull additional sidecar image ${sidecar.image}: ${invalidReferenceText(sidecar.image)}`);
    }
  }
}

export interface Resources {
  NanoCpus?: number;
  Memory?: number;
  MemorySwap?: number;
}

/**
 * The shape the Docker host can give: the daemon refuses a container asking
 * for more CPUs than it has (`Range of CPUs is from 0.01 to N`), so vcpus are
 * clamped to the host's count, with a warning that says so.
 */
export function fitShapeToHost(shape: InstanceShape | undefined, hostCpus: number | undefined): { shape: InstanceShape | undefined; warning?: string } {
  if (!shape || hostCpus === undefined || hostCpus <= 0 || shape.vcpus === undefined || shape.vcpus <= hostCpus) return { shape };
  return {
    shape: { ...shape, vcpus: hostCpus },
    warning: `instance_shape.vcpus ${shape.vcpus} is more than the ${hostCpus} CPUs of the Docker host; limiting the container to ${hostCpus} CPUs`,
  };
}

/** CPU and memory limits per positive axis; memory is a hard cap (no extra swap). */
export function resourcesForShape(shape: InstanceShape | undefined): Resources {
  const resources: Resources = {};
  if (shape?.vcpus !== undefined && shape.vcpus > 0) resources.NanoCpus = shape.vcpus * 1_000_000_000;
  if (shape?.memory_gb !== undefined && shape.memory_gb > 0) {
    resources.Memory = shape.memory_gb * 2 ** 30;
    resources.MemorySwap = resources.Memory;
  }
  return resources;
}

/** `<volume>:<mount>` for a read-write sidecar, else with `:ro`. */
export function sidecarBind(volume: string, sidecar: SidecarMount): string {
  return sidecar.read_write ? `${volume}:${sidecar.mount_path}` : `${volume}:${sidecar.mount_path}:ro`;
}

/**
 * The container's environment: the common task env, then the operator env
 * (which wins over server values), then the OZ_* variables the other backends
 * also set, each with its WARP_* alias. Duplicates resolve to the last value,
 * in first-appearance order.
 */
export function containerEnv(params: Pick<TaskParams, 'taskId' | 'env'>, operatorEnv: Readonly<Record<string, string>>): string[] {
  return dedupeEnv([
    ...params.env,
    ...Object.entries(operatorEnv).map(([key, value]) => `${key}=${value}`),
    ...wellKnownEntries([
      ['RUN_ID', params.taskId],
      ['WORKER_BACKEND', 'docker'],
    ]),
  ]);
}

export const ENTRYPOINT = '/agent/entrypoint.sh';
export const WORKING_DIR = '/workspace';

export interface TaskContainerInput {
  params: TaskParams;
  workerId: string;
  operatorEnv: Readonly<Record<string, string>>;
  /** Sidecar binds, in sidecar order. */
  sidecarBinds: readonly string[];
  /** `backend.docker.volumes` then `-v` flags, verbatim. */
  volumes: readonly string[];
}

/**
 * The `POST /containers/create` body of a task. The image's ENTRYPOINT is kept
 * (as the Go worker does), so images that wrap the command keep working.
 */
export function taskContainerBody(input: TaskContainerInput): Record<string, unknown> {
  const { params } = input;
  return {
    Image: params.image,
    Cmd: [ENTRYPOINT, ...params.args],
    Env: containerEnv(params, input.operatorEnv),
    WorkingDir: WORKING_DIR,
    Labels: taskLabels(input.workerId, params, 'task'),
    HostConfig: {
      Binds: [...input.sidecarBinds, ...input.volumes],
      ...resourcesForShape(params.instanceShape),
    },
  };
}

export interface TaskContainerSpecInput extends TaskContainerInput {
  /** The Docker host's CPU count, when known: a larger vcpus request is clamped to it. */
  hostCpus: number | undefined;
}

/** The task container the run creates, with the warning to log when the instance shape was fitted to the host. */
export function taskContainerSpec(input: TaskContainerSpecInput): { body: Record<string, unknown>; warning?: string } {
  const fitted = fitShapeToHost(input.params.instanceShape, input.hostCpus);
  const body = taskContainerBody({ ...input, params: { ...input.params, instanceShape: fitted.shape } });
  return fitted.warning ? { body, warning: fitted.warning } : { body };
}

/** Where a helper container mounts the volume being filled (absent from real images). */
export const FILL_TARGET = '/.oz-worker-sidecar-fill';

/** A never-started container from a sidecar image, to export its files or to receive them into `volume`. */
export function helperContainerBody(image: string, labels: Record<string, string>, volume?: string): Record<string, unknown> {
  return {
    Image: image,
    // Never run; an explicit command lets images without CMD/ENTRYPOINT be created.
    Cmd: ['true'],
    Labels: labels,
    HostConfig: volume ? { Binds: [`${volume}:${FILL_TARGET}`] } : {},
  };
}
