// What each config file key and environment variable means, for the generated
// reference (docs/reference.md, `node scripts/reference.mjs`). Which keys exist
// is the schema's (file-schema.ts) and what a flag means is its help text
// (src/cli/worker-options.ts): a key with the same meaning as a flag names the
// flag instead of repeating its text. test/unit/reference.test.ts fails on a key
// or variable that the code has and this file does not document, on an entry
// here the code does not have, and on a documented default the worker does not
// apply. Only the reference imports this file; the worker never loads it.
import { formatGoDuration } from './go-duration.js';
import { EXIT_WITH_PARENT_ENV, HEALTH_LISTEN_ENV, STATE_DIR_ENV, TUNING_VARIABLES } from './oz-worker-env.js';
import {
  DEFAULT_ACTIVE_DEADLINE_SECONDS,
  DEFAULT_DISPATCH_TIMEOUT_MS,
  DEFAULT_IMAGE_PULL_TIMEOUT_MS,
  DEFAULT_KUBERNETES_NAMESPACE,
  DEFAULT_PREFLIGHT_IMAGE,
  DEFAULT_PREFLIGHT_RESOURCES,
  DEFAULT_PREFLIGHT_TIMEOUT_MS,
  DEFAULT_TTL_SECONDS,
  DEFAULT_UNSCHEDULABLE_TIMEOUT_MS,
  DEFAULT_VOLUME_MOUNT_TIMEOUT_MS,
} from './resolve.js';

export interface KeyDoc {
  /** What the key does; may be left out when `flag` names a flag whose help says it. */
  description?: string;
  /** The worker flag with the same meaning (a flag wins over the key). */
  flag?: string;
  /**
   * The value the worker uses when the key is absent, written as it would be in the file (the reference test sets
   * the key to it and expects the same configuration). Absent: the flag's default, else none.
   */
  default?: string;
  /** Not a key of the Go worker. */
  ours?: true;
}

/** Go's short form: `2m`, not `2m0s`. */
const duration = (ms: number): string =>
  formatGoDuration(ms)
    .replace(/(\D)0s$/, '$1')
    .replace(/(\D)0m$/, '$1');

const ENVIRONMENT_ENTRY = 'Variables added to';

/** Keys by dotted path; `*` matches one segment, `[]` every item of a list. */
export const KEY_DOCS: Readonly<Record<string, KeyDoc>> = {
  worker_id: { flag: '--worker-id' },
  cleanup: {
    default: 'true',
    flag: '--no-cleanup',
    description:
      'false keeps what a task leaves behind, for debugging (the same as --no-cleanup): the workspace (direct), the container and its per-task volumes (docker), the Job and its pod (kubernetes).',
  },
  max_concurrent_tasks: { flag: '--max-concurrent-tasks' },
  one_shot: { flag: '--one-shot', default: 'false' },
  collect_task_logs: { flag: '--collect-task-logs', default: 'true' },
  debug_log_capture: {
    description:
      "The Go worker's debug log archives (for its debug_archive_logs_requested frames). Not implemented: accepted, its values unchecked, with one start-up warning.",
  },
  'debug_log_capture.directory': { description: 'Ignored (see debug_log_capture).' },
  'debug_log_capture.max_total_bytes': { description: 'Ignored (see debug_log_capture).' },
  'debug_log_capture.max_execution_bytes': { description: 'Ignored (see debug_log_capture).' },
  'debug_log_capture.max_concurrent_uploads': { description: 'Ignored (see debug_log_capture).' },
  idle_on_complete: { flag: '--idle-on-complete' },
  backend: {
    description: 'The backend and its settings: at most one of the blocks below, which selects that backend (an empty block too).',
  },
  'backend.docker': { description: 'The Docker backend: one container per task, on the Docker Engine found like the Docker CLI finds it.' },
  'backend.docker.volumes': {
    flag: '--volumes',
    description: 'Bind mounts for every task container (HOST_PATH:CONTAINER_PATH or HOST_PATH:CONTAINER_PATH:MODE); -v flags are added after these.',
  },
  'backend.docker.environment': {
    description: `${ENVIRONMENT_ENTRY} every task's environment; -e flags win on the same name.`,
  },
  'backend.docker.image_pull_policy': {
    default: 'Always',
    description:
      "When to pull a task's images, sidecars too: Always (before every task), IfNotPresent (only when the engine lacks it; an inspect error other than not-found fails the task without a pull) or Never (a missing image fails the task, naming the policy).",
  },
  'backend.docker.pull_policy': {
    ours: true,
    description:
      "oz-worker's older name of image_pull_policy: always, if_not_present, never mean Always, IfNotPresent, Never. Both keys may name the same policy; different ones are an error.",
  },
  'backend.docker.sidecar_image': {
    description: "Replaces the image of the assignment's /agent sidecar, only when the assignment has one (it never adds one).",
  },
  'backend.direct': { description: 'The direct backend: the oz CLI as a local process, in a workspace of its own per task.' },
  'backend.direct.workspace_root': { flag: '--workspace-root' },
  'backend.direct.target_dir': { flag: '--target-dir' },
  'backend.direct.oz_path': { flag: '--oz-path' },
  'backend.direct.setup_command': {
    description:
      "Runs with /bin/sh -c in the workspace before the agent; a failure fails the task. Variables it writes to $OZ_ENVIRONMENT_FILE (KEY=VALUE lines) reach the agent's environment.",
  },
  'backend.direct.teardown_command': {
    description: 'Runs with /bin/sh -c in the workspace after the agent, also after a cancel; a failure is only logged.',
  },
  'backend.direct.run_as_user': {
    ours: true,
    description: 'When the worker runs as root: setup, agent and teardown run as this user (name or uid), with its HOME, in workspaces it owns.',
  },
  'backend.direct.environment': { description: `${ENVIRONMENT_ENTRY} every task's environment; -e flags win on the same name.` },
  'backend.command': {
    description: "The command backend: an operator's dispatch command starts each task elsewhere and exits; the remote agent reports by itself.",
  },
  'backend.command.dispatch_command': {
    description: 'Required. Runs with /bin/sh -c for each task, with the task as one JSON line (payload version 1) on stdin; exit 0 means dispatched.',
  },
  'backend.command.cancel_command': {
    description: 'Runs with /bin/sh -c when the server cancels a dispatched task (OZ_RUN_ID names it); a failure is only logged.',
  },
  'backend.command.dispatch_timeout': {
    default: duration(DEFAULT_DISPATCH_TIMEOUT_MS),
    description: 'How long the dispatch command may run before the task fails (dispatch_timeout); zero or negative means the default.',
  },
  'backend.command.environment': {
    description: `${ENVIRONMENT_ENTRY} the dispatch and cancel commands' environment (not the task's); -e flags win on the same name.`,
  },
  'backend.*.environment[].name': { description: 'The variable (required, one word).' },
  'backend.*.environment[].value': { description: "Its value; absent or null: the worker's own value of the variable (empty when it has none)." },
  'backend.kubernetes': {
    description: "The Kubernetes backend: one Job per task in the namespace, followed through one watch of the worker's Jobs and one of its pods.",
  },
  'backend.kubernetes.namespace': { default: DEFAULT_KUBERNETES_NAMESPACE, description: 'Namespace of the task Jobs.' },
  'backend.kubernetes.kubeconfig': {
    description:
      'Kubeconfig file to use; absent: the in-cluster service account, else $KUBECONFIG or ~/.kube/config (exec plugins and token rotation included).',
  },
  'backend.kubernetes.default_image': {
    description: "The task image when the server's assignment names none (else ubuntu:22.04).",
  },
  'backend.kubernetes.image_pull_policy': {
    default: 'IfNotPresent',
    description: 'imagePullPolicy of the task and sidecar containers: Always, Never or IfNotPresent.',
  },
  'backend.kubernetes.use_image_volumes': {
    default: 'false',
    description:
      'Mount sidecar images as Kubernetes image volumes (read-only; needs a cluster with the ImageVolume feature) instead of copying them in a root init container.',
  },
  'backend.kubernetes.preflight_image': { default: DEFAULT_PREFLIGHT_IMAGE, description: 'Image of the start-up preflight Job.' },
  'backend.kubernetes.sidecar_image': { description: "Replaces the server's /agent sidecar image (e.g. a mirror in your registry)." },
  'backend.kubernetes.coding_cli_sidecars': {
    description: "Harness name → image: the CLI sidecar image for that harness (mounted at /mnt/<harness>-cli-sidecar), replacing or adding to the server's.",
  },
  'backend.kubernetes.setup_command': {
    description: 'Runs with /bin/sh -c in a setup init container of the task pod before the agent; a failure fails the task.',
  },
  'backend.kubernetes.teardown_command': { description: "Runs with /bin/sh -c as the task container's preStop hook." },
  'backend.kubernetes.extra_labels': { description: "Labels added to every task Job and pod (the worker's own labels win)." },
  'backend.kubernetes.extra_annotations': { description: 'Annotations added to every task Job and pod.' },
  'backend.kubernetes.active_deadline_seconds': {
    default: String(DEFAULT_ACTIVE_DEADLINE_SECONDS),
    description: "activeDeadlineSeconds of each task Job: the longest a task may run. 0: no limit. (The Go worker's default is no limit.)",
  },
  'backend.kubernetes.ttl_seconds_after_finished': {
    default: String(DEFAULT_TTL_SECONDS),
    description: 'ttlSecondsAfterFinished of each task Job: how long a finished Job is kept (0: deleted at once). Without cleanup, finished Jobs are kept.',
  },
  'backend.kubernetes.workspace_size_limit': { description: 'Size limit of the /workspace emptyDir, a Kubernetes quantity such as 10Gi.' },
  'backend.kubernetes.unschedulable_timeout': {
    default: duration(DEFAULT_UNSCHEDULABLE_TIMEOUT_MS),
    description: 'How long a task pod may stay unschedulable before the task fails (unschedulable); zero or negative: never.',
  },
  'backend.kubernetes.volume_mount_timeout': {
    default: duration(DEFAULT_VOLUME_MOUNT_TIMEOUT_MS),
    description:
      "How long a task pod may keep failing to mount a volume (kubelet's FailedMount events, still reported within the last minute) before the task fails (volume_mount); 0s: never.",
  },
  'backend.kubernetes.image_pull_timeout': {
    ours: true,
    default: duration(DEFAULT_IMAGE_PULL_TIMEOUT_MS),
    description:
      'How long a transient image pull failure (registry unreachable, 5xx, timeout) may last before the task fails; a permanent one (not found, unauthorized) fails it at once. Zero or negative: at the first failure, as the Go worker does.',
  },
  'backend.kubernetes.preflight_timeout': {
    ours: true,
    default: duration(DEFAULT_PREFLIGHT_TIMEOUT_MS),
    description: 'How long the start-up preflight Job may take to complete; zero or negative skips it.',
  },
  'backend.kubernetes.pod_template': {
    description:
      'A Kubernetes PodSpec merged into every task pod (nodeSelector, tolerations, serviceAccountName, imagePullSecrets, containers[].resources, …); a misspelled field stops the worker naming it.',
  },
  'backend.kubernetes.preflight_resources': {
    description: `Resources (requests, limits) of the preflight Job's container; default: requests ${resourcesText(DEFAULT_PREFLIGHT_RESOURCES.requests)}, limits ${resourcesText(DEFAULT_PREFLIGHT_RESOURCES.limits)}.`,
  },
  device: {
    ours: true,
    description: 'Device mode: the worker runs only tasks inside this scope; any other assignment is answered with task_rejected before anything starts.',
  },
  'device.owner_user_id': { ours: true, flag: '--device-owner-user-id' },
  'device.team_ids': { ours: true, flag: '--device-team-id', description: 'Warp team ids whose tasks this device also runs.' },
  'device.device_id': { ours: true, flag: '--device-id' },
  api_key_file: { ours: true, flag: '--api-key-file' },
  shutdown_grace_period: { ours: true, flag: '--shutdown-grace-period' },
};

function resourcesText(resources: Record<string, string>): string {
  return Object.entries(resources)
    .map(([name, value]) => `${name} ${value}`)
    .join(', ');
}

export interface EnvironmentDoc {
  name: string;
  /** The section of the reference it is listed in. */
  group: 'worker' | 'client' | 'metrics' | 'network' | 'docker' | 'kubernetes' | 'platform';
  /** May be left out when `flag` names the worker flag it stands for (whose help then says `$NAME`). */
  description?: string;
  flag?: string;
  default?: string;
  /** Who reads it when the worker's own code does not read it by name (a library, Node.js). */
  readBy?: string;
}

const TUNING_MEANING: Record<(typeof TUNING_VARIABLES)[number][0], string> = {
  pingIntervalMs: 'Milliseconds between pings to the dispatch server (default 30000). For tests and benchmarks.',
  pongTimeoutMs: 'Milliseconds without a frame or pong before the connection is dropped and dialled again (default 60000). For tests and benchmarks.',
  stableAfterMs: 'Milliseconds a connection must stay up before the reconnect backoff starts over (default 30000). For tests and benchmarks.',
  reconnectInitialMs: 'First reconnect delay in milliseconds (default 1000). For tests and benchmarks.',
  reconnectMaxMs: 'Longest reconnect delay in milliseconds (default 60000). For tests and benchmarks.',
};

export const ENVIRONMENT_DOCS: readonly EnvironmentDoc[] = [
  { name: 'WARP_API_KEY', group: 'worker', flag: '--api-key' },
  { name: 'WARP_API_KEY_FILE', group: 'worker', flag: '--api-key-file' },
  { name: STATE_DIR_ENV, group: 'worker', flag: '--state-dir' },
  { name: 'OZ_COLLECT_TASK_LOGS', group: 'worker', flag: '--collect-task-logs' },
  {
    name: 'SUDO_USER',
    group: 'worker',
    description: 'Set by sudo: `oz-worker service install` on macOS installs the job for that user when --user is not given.',
  },
  { name: HEALTH_LISTEN_ENV, group: 'worker', flag: '--health-listen' },
  {
    name: EXIT_WITH_PARENT_ENV,
    group: 'worker',
    default: '0',
    description: '1: exit when the IPC channel to the parent process closes (set by `oz-worker local` on its workers).',
  },
  ...TUNING_VARIABLES.map(([key, name]): EnvironmentDoc => ({ name, group: 'worker', description: TUNING_MEANING[key] })),
  { name: 'NO_COLOR', group: 'worker', description: 'Set: the log on a terminal is not coloured (https://no-color.org).' },
  {
    name: 'INVOCATION_ID',
    group: 'worker',
    description: 'Set by systemd for a service: the default workspace root is then /var/lib/oz/workspaces, as for root.',
  },
  { name: 'OZ_SERVER_URL', group: 'client', description: 'The local dispatch server `oz-worker task` and `oz-worker admin` talk to (their --server).' },
  { name: 'OZ_API_KEY', group: 'client', description: "A user or team key of that server for `oz-worker task` (its --api-key; default: the demo user's)." },
  {
    name: 'OZ_ADMIN_KEY',
    group: 'client',
    description: "The server's admin key for `oz-worker admin` (its --api-key; default: admin.key in the state directory).",
  },
  {
    name: 'OTEL_METRICS_EXPORTER',
    group: 'metrics',
    description: 'prometheus, otlp, console or none. Unset: OTLP when an OTLP endpoint is set, else no metrics (the Go worker pushes to localhost then).',
  },
  { name: 'OTEL_EXPORTER_PROMETHEUS_HOST', group: 'metrics', default: 'localhost', description: 'Address the Prometheus exporter serves /metrics on.' },
  { name: 'OTEL_EXPORTER_PROMETHEUS_PORT', group: 'metrics', default: '9464', description: 'Port the Prometheus exporter serves /metrics on.' },
  { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', group: 'metrics', description: 'OTLP/HTTP collector to push metrics to (every 60 s), + /v1/metrics.' },
  {
    name: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
    group: 'metrics',
    description: 'OTLP/HTTP metrics endpoint, used as is (wins over OTEL_EXPORTER_OTLP_ENDPOINT).',
  },
  {
    name: 'OTEL_EXPORTER_OTLP_HEADERS',
    group: 'metrics',
    readBy: 'the OpenTelemetry SDK',
    description: 'Headers of the OTLP push; _TIMEOUT, _COMPRESSION, _CERTIFICATE, _CLIENT_KEY, _CLIENT_CERTIFICATE and the _METRICS_ forms work as well.',
  },
  {
    name: 'OTEL_RESOURCE_ATTRIBUTES',
    group: 'metrics',
    readBy: 'the OpenTelemetry SDK',
    description: 'Extra resource attributes (key=value,…), shown on target_info.',
  },
  {
    name: 'HTTPS_PROXY',
    group: 'network',
    description:
      'Proxy for the dispatch WebSocket, the Kubernetes API (unless the kubeconfig names one), the OTLP push and `oz-worker task`; also https_proxy.',
  },
  { name: 'HTTP_PROXY', group: 'network', description: 'Proxy for plain http:// and ws:// URLs; also http_proxy.' },
  { name: 'NO_PROXY', group: 'network', description: 'Hosts reached without the proxy (comma-separated names, domains, addresses); also no_proxy.' },
  {
    name: 'NODE_EXTRA_CA_CERTS',
    group: 'network',
    readBy: 'Node.js',
    description: 'A PEM file of extra CA certificates trusted for every TLS connection (--ca-file is for the dispatch server).',
  },
  {
    name: 'DOCKER_HOST',
    group: 'docker',
    description: 'The Docker Engine: unix:///path/docker.sock or tcp://host:port; else the context, else the first socket that exists.',
  },
  { name: 'DOCKER_TLS_VERIFY', group: 'docker', description: 'Set: TLS with verification for a tcp:// host, with the files of DOCKER_CERT_PATH.' },
  { name: 'DOCKER_TLS', group: 'docker', description: 'Set: TLS for a tcp:// host.' },
  { name: 'DOCKER_CERT_PATH', group: 'docker', default: '~/.docker', description: 'Directory holding ca.pem, cert.pem and key.pem for TLS.' },
  { name: 'DOCKER_API_VERSION', group: 'docker', description: "Pins the Engine API version (default: the daemon's, when older than ours)." },
  { name: 'DOCKER_CONTEXT', group: 'docker', description: 'The Docker context to use (else currentContext of ~/.docker/config.json).' },
  { name: 'DOCKER_CONFIG', group: 'docker', default: '~/.docker', description: "Where the Docker CLI's config.json (contexts, registry credentials) lives." },
  { name: 'XDG_RUNTIME_DIR', group: 'docker', description: "Where rootless Docker's socket (docker.sock) is looked for." },
  {
    name: 'KUBECONFIG',
    group: 'kubernetes',
    default: '~/.kube/config',
    description: 'Kubeconfig file(s), when backend.kubernetes.kubeconfig is not set and the worker runs outside a cluster.',
  },
  {
    name: 'KUBERNETES_SERVICE_HOST',
    group: 'kubernetes',
    description: 'Set inside a pod (with KUBERNETES_SERVICE_PORT): the worker uses its service account.',
  },
  { name: 'KUBERNETES_SERVICE_PORT', group: 'kubernetes', description: 'See KUBERNETES_SERVICE_HOST.' },
  { name: 'HOME', group: 'platform', description: "The user's home: default directories, ~ in paths, the agent's HOME on the direct backend." },
  { name: 'PATH', group: 'platform', description: 'Where the oz CLI and helper programs are found; the agent gets it on the direct backend.' },
  { name: 'TMPDIR', group: 'platform', default: '/tmp', description: "Temporary files; the agent's TMPDIR on the direct backend." },
  {
    name: 'XDG_CONFIG_HOME',
    group: 'platform',
    default: '~/.config',
    description: 'Linux: the config directory (oz-worker/config.yaml is read from it when --config-file is not given).',
  },
  {
    name: 'XDG_STATE_HOME',
    group: 'platform',
    default: '~/.local/state',
    description: "Linux: the state directory (the worker's journal, the local server's database and keys).",
  },
  { name: 'XDG_DATA_HOME', group: 'platform', default: '~/.local/share', description: "Linux: the data directory (a plain user's default workspace root)." },
  { name: 'XDG_CACHE_HOME', group: 'platform', default: '~/.cache', description: "Linux: the cache directory (`oz-worker local`'s workspaces)." },
];
