// Everything a backend needs for one task, built from the assignment and the
// worker's configuration. Pure: warnings are returned, not logged.
import type { TaskParams } from '../task/contract.js';
import type { WorkerConfig } from '../config/worker-config.js';
import type { SidecarMount, TaskAssignment } from '../protocol/messages.js';
import { buildAgentArgs, mcpArgumentFromParsed } from './args.js';
import { goTrim } from './go-trim.js';
import { commonTaskEnv, workerTaskEnv } from './task-env.js';

export const FALLBACK_IMAGE = 'ubuntu:22.04';

export function resolveImage(assignment: TaskAssignment, kubernetesDefaultImage?: string): { image: string; fallbackWarning?: string } {
  if (assignment.docker_image) return { image: assignment.docker_image };
  if (kubernetesDefaultImage) return { image: kubernetesDefaultImage };
  const environment = assignment.task.agent_config_snapshot?.environment_id;
  return {
    image: FALLBACK_IMAGE,
    ...(environment ? { fallbackWarning: `no image for environment ${environment}; using ${FALLBACK_IMAGE}` } : {}),
  };
}

export interface SidecarOverrides {
  /** The backend's `sidecar_image` (Kubernetes or Docker): replaces the assignment's `/agent` sidecar image. */
  agentSidecarImage?: string | undefined;
  codingCliSidecars?: Record<string, string> | undefined;
}

export function buildSidecars(assignment: TaskAssignment, overrides: SidecarOverrides = {}): SidecarMount[] {
  const sidecars: SidecarMount[] = [];
  // Only an assignment that asks for the agent sidecar gets one: the override replaces its image, never adds it.
  if (assignment.sidecar_image) {
    sidecars.push({ image: overrides.agentSidecarImage || assignment.sidecar_image, mount_path: '/agent', read_write: false });
  }
  for (const extra of assignment.additional_sidecars ?? []) {
    sidecars.push({ image: extra.image ?? '', mount_path: extra.mount_path ?? '', read_write: extra.read_write ?? false });
  }
  const harnessType = assignment.task.agent_config_snapshot?.harness?.type;
  if (overrides.codingCliSidecars && harnessType !== undefined) {
    const harness = goTrim(harnessType);
    const image = overrides.codingCliSidecars[harness];
    if (image) {
      const mountPath = `/mnt/${harness}-cli-sidecar`;
      const existing = sidecars.find((s) => s.mount_path === mountPath);
      if (existing) existing.image = image;
      else sidecars.push({ image, mount_path: mountPath, read_write: false });
    }
  }
  return sidecars;
}

// The Go worker uses task.id for --task-id and TASK_ID; an empty one falls back to the envelope id.
const taskObjectIdOf = (assignment: TaskAssignment): string => assignment.task.id || assignment.task_id;

/**
 * The task environment entries (`KEY=VALUE`) the worker sets itself, as opposed
 * to the server's `env_vars` and the operator's `-e` values, which may be secrets.
 */
export function workerOwnTaskEnv(assignment: TaskAssignment, config: Pick<WorkerConfig, 'serverRootUrl'>): Set<string> {
  return new Set(workerTaskEnv({ taskObjectId: taskObjectIdOf(assignment), serverRootUrl: config.serverRootUrl }));
}

/** Builds one task's parameters from its assignment and the `--mcp` token decoded from the raw frame. */
export type TaskParamsBuilder = (assignment: TaskAssignment, mcpArgument: string | undefined) => TaskParams;

/**
 * The `mcp_servers` JSON, once for every consumer: the token the decoder cut
 * from the raw frame (each value byte-exact), else one rebuilt from the parsed
 * values; none for an absent or empty map.
 */
export function mcpServersJson(assignment: TaskAssignment, mcpArgument: string | undefined): string | undefined {
  const servers = assignment.task.agent_config_snapshot?.mcp_servers;
  if (!servers || Object.keys(servers).length === 0) return undefined;
  return mcpArgument ?? mcpArgumentFromParsed(servers);
}

/** The production TaskParamsBuilder (the worker core's default), given the worker's configuration. */
export function buildTaskParams(assignment: TaskAssignment, mcpArgument: string | undefined, config: WorkerConfig): TaskParams {
  // The Kubernetes backend overrides images from its config; the Docker backend only the agent sidecar's.
  const kubernetes = config.backend === 'kubernetes' ? config.kubernetes : undefined;
  const agentSidecarImage = kubernetes ? kubernetes.sidecarImage : config.backend === 'docker' ? config.docker.sidecarImage : undefined;
  const taskObjectId = taskObjectIdOf(assignment);
  const mcpServers = mcpServersJson(assignment, mcpArgument);
  return {
    taskId: assignment.task_id,
    executionId: assignment.execution_id ?? '',
    task: assignment.task,
    args: buildAgentArgs({
      task: assignment.task,
      taskObjectId,
      additionalOzArgs: assignment.additional_oz_args,
      mcpServers,
      serverRootUrl: config.serverRootUrl,
      idleOnComplete: config.idleOnComplete,
      sessionSharingServerUrl: config.sessionSharingServerUrl,
    }),
    mcpServers,
    env: commonTaskEnv({ taskObjectId, serverRootUrl: config.serverRootUrl, envVars: assignment.env_vars }),
    image: resolveImage(assignment, kubernetes?.defaultImage).image,
    sidecars: buildSidecars(assignment, { agentSidecarImage, codingCliSidecars: kubernetes?.codingCliSidecars }),
    instanceShape: assignment.instance_shape,
  };
}
