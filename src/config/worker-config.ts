// The worker's resolved configuration: flags over file over defaults, already
// validated. Everything downstream reads this, never raw flags or YAML.
import type { BackendName } from '../task/contract.js';
import type { LogLevel } from '../log/logger.js';
import type { RunAsUser } from './users.js';
import type { ConnectionTuning } from './oz-worker-env.js';
import type { ImagePullPolicy } from './file-schema.js';

export const DEFAULT_WEB_SOCKET_URL = 'wss://oz.warp.dev/api/v1/selfhosted/worker/ws';
export const DEFAULT_SERVER_ROOT_URL = 'https://app.warp.dev';
export const DEFAULT_WORKSPACE_ROOT = '/var/lib/oz/workspaces';
export const DEFAULT_SHUTDOWN_GRACE_MS = 25_000;
export const DEFAULT_CANCEL_GRACE_MS = 10_000;

export interface DirectBackendConfig {
  workspaceRoot: string;
  targetDir: string;
  /** Empty: look up `oz` on PATH at start-up. */
  ozPath: string;
  setupCommand: string;
  teardownCommand: string;
  /** Setup, agent and teardown run as this user (`run_as_user`; the worker runs as root). */
  runAs?: RunAsUser;
}

export interface DockerBackendConfig {
  volumes: string[];
  /**
   * When to pull a task's images (sidecars' too): `Always` (the default), `IfNotPresent`
   * or `Never`; `image_pull_policy`, or the older `pull_policy` spelling of it.
   */
  pullPolicy: ImagePullPolicy;
  /** Replaces the assignment's `/agent` sidecar image, when the assignment has one. */
  sidecarImage?: string;
}

export interface CommandBackendConfig {
  dispatchCommand: string;
  cancelCommand: string;
  dispatchTimeoutMs: number;
}

/**
 * The `backend.kubernetes` block with every default applied: what the backend
 * reads. Optional fields are ones with no default (absent: not set).
 */
export interface KubernetesBackendConfig {
  namespace: string;
  /** Absent: the in-cluster service account, else ~/.kube/config. */
  kubeconfig?: string;
  defaultImage?: string;
  imagePullPolicy: 'Always' | 'Never' | 'IfNotPresent';
  useImageVolumes: boolean;
  preflightImage: string;
  sidecarImage?: string;
  codingCliSidecars?: Record<string, string>;
  setupCommand: string;
  teardownCommand: string;
  extraLabels: Record<string, string>;
  extraAnnotations: Record<string, string>;
  /** Undefined: no deadline (`active_deadline_seconds: 0`). */
  activeDeadlineSeconds: number | undefined;
  /** Undefined: finished Jobs are kept (cleanup is off). */
  ttlSecondsAfterFinished: number | undefined;
  workspaceSizeLimit?: string;
  /** 0 disables the unschedulable check. */
  unschedulableTimeoutMs: number;
  /** How long a pod may keep failing to mount a volume before the task fails; 0: never. */
  volumeMountTimeoutMs: number;
  /** How long a transient image pull failure may last; 0 fails at the first. */
  imagePullTimeoutMs: number;
  /** 0 skips the start-up preflight Job. */
  preflightTimeoutMs: number;
  /** Raw `pod_template`; the backend validates it against the PodSpec schema. */
  podTemplate?: Record<string, unknown>;
  /** Raw `preflight_resources` (or the default); validated by the backend. */
  preflightResources: Record<string, unknown>;
}

/** Device mode: the worker runs only tasks inside its owner's scope. */
export interface DeviceScope {
  ownerUserId: number | undefined;
  teamIds: number[];
  /** Identifies this device to the dispatch server (optional; the Go server ignores it). */
  deviceId?: string;
}

/** What every backend shares. */
export interface CommonWorkerConfig {
  apiKey: string;
  workerId: string;
  webSocketUrl: string;
  serverRootUrl: string;
  sessionSharingServerUrl: string;
  logLevel: LogLevel;
  /** The backend as the Go worker reports it in metrics: '' when docker was implied. */
  backendLabel: string;
  cleanup: boolean;
  /** 0 = unlimited; 1 in one-shot mode. */
  maxConcurrentTasks: number;
  /** Run one task, deliver its terminal status, then shut down and exit 0 (`one_shot`, `--one-shot`). */
  oneShot: boolean;
  /** Whether task logs are collected for the server (`collect_task_logs`, `--collect-task-logs`, `OZ_COLLECT_TASK_LOGS`). */
  collectTaskLogs: boolean;
  idleOnComplete: string;
  /**
   * The operator's additions to every task's environment: the backend's YAML
   * `environment` overlaid by `-e` flags.
   */
  operatorEnv: Record<string, string>;
  /** Bounded time for a graceful shutdown before the worker exits anyway. */
  shutdownGraceMs: number;
  /** Time a cancelled agent gets between SIGTERM and SIGKILL. */
  cancelGraceMs: number;
  device: DeviceScope | undefined;
  /** Where /livez and /readyz are served; absent: not served. */
  healthListen?: { host: string; port: number };
  /** Holds the journal of pending statuses and running tasks. */
  stateDir?: string;
  /** Extra CA certificates (PEM) trusted for the dispatch server (`--ca-file`). */
  caPem?: string;
  /** Problems worth a warning in the log once it exists (e.g. a key file others can read). */
  startupWarnings?: string[];
  /** Connection timing overrides from `OZ_WORKER_*_MS`. */
  connectionTuning: ConnectionTuning;
  /** Started by `oz-worker local`: exit when it goes (`OZ_WORKER_EXIT_WITH_PARENT`). */
  exitWithParent: boolean;
}

/** The selected backend and its settings: only that backend's section exists. */
export type BackendSection =
  | { backend: 'direct'; direct: DirectBackendConfig }
  | { backend: 'docker'; docker: DockerBackendConfig }
  | { backend: 'kubernetes'; kubernetes: KubernetesBackendConfig }
  | { backend: 'command'; command: CommandBackendConfig };

export type WorkerConfig = CommonWorkerConfig & BackendSection;

/** The configuration of a worker running backend `B` (what that backend's factory takes). */
export type WorkerConfigFor<B extends BackendName> = Extract<WorkerConfig, { backend: B }>;

/** The worker-wide settings an operator checks (`doctor`, `plan`): concurrency, one-shot, task log collection. */
export function describeWorkerSettings(config: Pick<CommonWorkerConfig, 'maxConcurrentTasks' | 'oneShot' | 'collectTaskLogs'>): string {
  const tasks = config.oneShot
    ? 'one-shot (one task, then it exits)'
    : config.maxConcurrentTasks === 0
      ? 'unlimited concurrent tasks'
      : `at most ${config.maxConcurrentTasks} concurrent task${config.maxConcurrentTasks === 1 ? '' : 's'}`;
  return `${tasks}; task logs ${config.collectTaskLogs ? 'collected' : 'not collected'}`;
}
