// Flags over config file over defaults, checked once, into a WorkerConfig.
// Pure apart from the injected secret-file reader, host identity and user lookup. Where the Go worker was
// silent about a contradiction (a --backend that ignores the file's block),
// this is an error that says what to change; what the Go worker accepts is
// never refused (at most warned about: negative concurrency, ignored keys).
import { readFileSync } from 'node:fs';
import { BACKEND_CAPABILITIES, BACKEND_NAMES, type BackendName } from '../task/contract.js';
import type { LogLevel } from '../log/logger.js';
import { parseEnvFlags, parseVolumeFlags } from './env-flags.js';
import { ConfigError, describeReadError } from './errors.js';
import { parseHostPort } from './host-port.js';
import { defaultWorkspaceRoot, platformDirs, thisHost, type HostIdentity } from './locations.js';
import { BACKEND_BLOCKS, dockerBlockPullPolicy, ignoredKeyWarnings, type FileBackendName, type FileConfig, type FileEnvEntry } from './file-schema.js';
import { InvalidDurationError, parseGoDuration } from './go-duration.js';
import { lookUpUser, resolveRunAsUser, type LookUpUser } from './users.js';
import { readOzWorkerEnv } from './oz-worker-env.js';
import {
  DEFAULT_CANCEL_GRACE_MS,
  DEFAULT_SERVER_ROOT_URL,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_WEB_SOCKET_URL,
  type BackendSection,
  type CommandBackendConfig,
  type CommonWorkerConfig,
  type DeviceScope,
  type KubernetesBackendConfig,
  type WorkerConfig,
} from './worker-config.js';

/** The option values commander produces for the worker command (camelCase of the long flags). */
export interface WorkerFlags {
  apiKey?: string;
  apiKeyFile?: string;
  workerId?: string;
  configFile?: string;
  backend?: string;
  webSocketUrl?: string;
  serverRootUrl?: string;
  logLevel?: string;
  targetDir?: string;
  workspaceRoot?: string;
  ozPath?: string;
  caFile?: string;
  stateDir?: string;
  healthListen?: string;
  /** `--no-cleanup` gives false; commander defaults it to true. */
  cleanup?: boolean;
  volumes?: string[];
  env?: string[];
  /** Validated here: commander hands over the text. */
  maxConcurrentTasks?: string;
  idleOnComplete?: string;
  /** `--one-shot` (`--one-shot=false` is dropped before parsing: the same as not giving it). */
  oneShot?: boolean;
  /** `--collect-task-logs` gives true, `--no-collect-task-logs` false (`=BOOL` forms rewritten to these). */
  collectTaskLogs?: boolean;
  sessionSharingServerUrl?: string;
  shutdownGracePeriod?: string;
  deviceOwnerUserId?: string;
  deviceTeamId?: string[];
  deviceId?: string;
}

export type HostEnv = Readonly<Record<string, string | undefined>>;
/** Returns a file's raw contents; throws (with an errno `code`) when it cannot. */
export type ReadSecretFile = (path: string) => string;

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
export const DEFAULT_DISPATCH_TIMEOUT_MS = 60_000;
/** The Go worker's later default (it was 30 s up to 3382ab6). */
export const DEFAULT_UNSCHEDULABLE_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_VOLUME_MOUNT_TIMEOUT_MS = 2 * 60_000;
export const DEFAULT_PREFLIGHT_TIMEOUT_MS = 120_000;
export const DEFAULT_IMAGE_PULL_TIMEOUT_MS = 60_000;
export const DEFAULT_KUBERNETES_NAMESPACE = 'default';
export const DEFAULT_ACTIVE_DEADLINE_SECONDS = 8 * 60 * 60;
export const DEFAULT_TTL_SECONDS = 24 * 60 * 60;
export const DEFAULT_PREFLIGHT_IMAGE = 'busybox:1.36';
export const DEFAULT_PREFLIGHT_RESOURCES = {
  requests: { cpu: '10m', memory: '16Mi' },
  limits: { cpu: '100m', memory: '64Mi' },
};

const RESERVED_WORKER_ID_PREFIX = 'warp';

/** Reads a secret file from disk (the default ReadSecretFile). */
export function readSecretFile(path: string): string {
  return readFileSync(path, 'utf8');
}

/**
 * The API key: `--api-key`, else `WARP_API_KEY`, else the contents of
 * `--api-key-file`, `WARP_API_KEY_FILE` or the file's `api_key_file` (first set wins),
 * without trailing whitespace. Empty values count as unset.
 */
export function resolveApiKey(flags: WorkerFlags, file: FileConfig | undefined, hostEnv: HostEnv, readSecret: ReadSecretFile): string {
  if (flags.apiKey) return flags.apiKey;
  if (hostEnv.WARP_API_KEY) return hostEnv.WARP_API_KEY;
  const sources: [string | undefined, string][] = [
    [flags.apiKeyFile, '--api-key-file'],
    [hostEnv.WARP_API_KEY_FILE, 'WARP_API_KEY_FILE'],
    [file?.api_key_file, 'api_key_file in the config file'],
  ];
  const found = sources.find(([path]) => path);
  if (!found) {
    throw new ConfigError('missing API key: pass --api-key or set WARP_API_KEY (or name a file that holds it with --api-key-file)');
  }
  const [path = '', origin] = found;
  let contents: string;
  try {
    contents = readSecret(path);
  } catch (error) {
    throw new ConfigError(`could not read the API key file ${path} (from ${origin}): ${describeReadError(error)}`);
  }
  const key = contents.replace(/\s+$/, '');
  if (key === '') throw new ConfigError(`the API key file ${path} (from ${origin}) is empty (write the API key into it)`);
  return key;
}

function resolveHealthListen(text: string | undefined): { healthListen?: { host: string; port: number } } {
  if (!text) return {};
  const parsed = parseHostPort(text);
  if (!parsed) throw new ConfigError(`invalid --health-listen ${JSON.stringify(text)}: use host:port, e.g. 127.0.0.1:8080 (0.0.0.0:8080 in a pod)`);
  return { healthListen: parsed };
}

function readCaFile(path: string, readFile: ReadSecretFile): string {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigError(`could not read --ca-file ${path}: ${describeReadError(error)}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError(
      `--ca-file ${path} holds no PEM certificate (expected "-----BEGIN CERTIFICATE-----"; convert DER with: openssl x509 -inform der -in <file> -out ca.pem)`,
    );
  }
  return text;
}

/** The file the API key is read from, when it comes from one (same order as resolveApiKey). */
export function apiKeyFileSource(flags: WorkerFlags, file: FileConfig | undefined, hostEnv: HostEnv): string | undefined {
  if (flags.apiKey || hostEnv.WARP_API_KEY) return undefined;
  return flags.apiKeyFile || hostEnv.WARP_API_KEY_FILE || file?.api_key_file || undefined;
}

/** A warning when a key file can be read or written by anyone but its owner. */
export function keyFilePermissionWarning(path: string, mode: number): string | undefined {
  if ((mode & 0o077) === 0) return undefined;
  return `the API key file ${path} is accessible to other users (mode ${(mode & 0o777).toString(8).padStart(3, '0')}); restrict it: chmod 600 ${path}`;
}

export function resolveWorkerConfig(
  flags: WorkerFlags,
  file: FileConfig | undefined,
  hostEnv: HostEnv,
  readSecret: ReadSecretFile = readSecretFile,
  host: HostIdentity = thisHost(),
  users: { lookUp: LookUpUser; currentUid: number | undefined } = { lookUp: lookUpUser, currentUid: host.uid },
): WorkerConfig {
  const apiKey = resolveApiKey(flags, file, hostEnv, readSecret);
  const caPem = flags.caFile ? readCaFile(flags.caFile, readSecret) : undefined;
  const workerId = resolveWorkerId(flags, file);
  const { backend, backendLabel } = resolveBackend(flags, file);
  const logLevel = resolveLogLevel(flags.logLevel);
  const warnings = ignoredKeyWarnings(file);
  const oneShot = resolveOneShot(flags, file, backend);
  const maxConcurrentTasks = resolveMaxConcurrentTasks(flags, file, oneShot, warnings);
  const flagEnv = parseEnvFlags(flags.env ?? [], hostEnv);
  const flagVolumes = parseVolumeFlags(flags.volumes ?? []);
  const ozWorkerEnv = readOzWorkerEnv(hostEnv);

  const fileEnv = backend === 'kubernetes' ? {} : resolveFileEnv(file?.backend?.[backend]?.environment, `backend.${backend}.environment`, hostEnv);
  // The command line can only turn cleanup off.
  const cleanup = flags.cleanup !== false && file?.cleanup !== false;
  const section = resolveBackendSection(backend, { flags, file, hostEnv, host, users, flagVolumes, cleanup });

  const common: CommonWorkerConfig = {
    apiKey,
    workerId,
    webSocketUrl: checkedUrl('--web-socket-url', flags.webSocketUrl || DEFAULT_WEB_SOCKET_URL, ['ws:', 'wss:']),
    serverRootUrl: checkedUrl('--server-root-url', flags.serverRootUrl || DEFAULT_SERVER_ROOT_URL, ['http:', 'https:']),
    sessionSharingServerUrl: flags.sessionSharingServerUrl ?? '',
    logLevel,
    backendLabel,
    cleanup,
    maxConcurrentTasks,
    oneShot,
    // Flag, then the Go worker's variable, then the file; on unless turned off.
    collectTaskLogs: flags.collectTaskLogs ?? ozWorkerEnv.collectTaskLogs ?? file?.collect_task_logs ?? true,
    idleOnComplete: flags.idleOnComplete || file?.idle_on_complete || '',
    operatorEnv: { ...fileEnv, ...flagEnv },
    shutdownGraceMs: resolveShutdownGrace(flags, file),
    cancelGraceMs: DEFAULT_CANCEL_GRACE_MS,
    device: resolveDevice(flags, file),
    ...(caPem ? { caPem } : {}),
    ...resolveHealthListen(flags.healthListen || ozWorkerEnv.healthListen),
    stateDir: flags.stateDir || ozWorkerEnv.stateDir || platformDirs(undefined, hostEnv).stateDir,
    connectionTuning: ozWorkerEnv.connectionTuning,
    exitWithParent: ozWorkerEnv.exitWithParent,
    ...(warnings.length > 0 ? { startupWarnings: warnings } : {}),
  };
  return { ...common, ...section };
}

interface SectionInputs {
  flags: WorkerFlags;
  file: FileConfig | undefined;
  hostEnv: HostEnv;
  host: HostIdentity;
  users: { lookUp: LookUpUser; currentUid: number | undefined };
  flagVolumes: string[];
  cleanup: boolean;
}

/** The selected backend's section; the others do not exist. */
function resolveBackendSection(backend: BackendName, { flags, file, hostEnv, host, users, flagVolumes, cleanup }: SectionInputs): BackendSection {
  const blocks = file?.backend;
  switch (backend) {
    case 'direct': {
      const runAs = resolveRunAsUser(blocks?.direct?.run_as_user ?? '', users.lookUp, users.currentUid);
      return {
        backend,
        direct: {
          workspaceRoot: flags.workspaceRoot || blocks?.direct?.workspace_root || defaultWorkspaceRoot({ ...host, env: hostEnv }),
          targetDir: flags.targetDir || blocks?.direct?.target_dir || '',
          ozPath: flags.ozPath || blocks?.direct?.oz_path || '',
          setupCommand: blocks?.direct?.setup_command ?? '',
          teardownCommand: blocks?.direct?.teardown_command ?? '',
          ...(runAs ? { runAs } : {}),
        },
      };
    }
    case 'docker': {
      const block = blocks?.docker ?? {};
      return {
        backend,
        docker: {
          volumes: [...(block.volumes ?? []), ...flagVolumes],
          pullPolicy: dockerBlockPullPolicy(block) ?? 'Always',
          ...(block.sidecar_image ? { sidecarImage: block.sidecar_image } : {}),
        },
      };
    }
    case 'command':
      return { backend, command: resolveCommand(file) };
    case 'kubernetes':
      return { backend, kubernetes: resolveKubernetes(file, cleanup) };
  }
}

function resolveWorkerId(flags: WorkerFlags, file: FileConfig | undefined): string {
  const workerId = flags.workerId || file?.worker_id || '';
  if (workerId === '') throw new ConfigError('worker-id is required (via --worker-id flag or config file)');
  if (workerId.startsWith(RESERVED_WORKER_ID_PREFIX)) {
    throw new ConfigError("invalid worker-id: values starting with 'warp' are reserved and cannot be used");
  }
  return workerId;
}

function isBackendName(value: string): value is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(value);
}

/**
 * `--backend`, else the file's block, else docker. The label stays '' when docker
 * was only implied (the Go worker reports it so in metrics).
 */
function resolveBackend(flags: WorkerFlags, file: FileConfig | undefined): { backend: BackendName; backendLabel: string } {
  const flag = flags.backend ?? '';
  if (flag !== '' && !isBackendName(flag)) {
    throw new ConfigError(`invalid --backend ${JSON.stringify(flag)}: use one of ${BACKEND_NAMES.join(', ')}`);
  }
  const blocks: FileBackendName[] = BACKEND_BLOCKS.filter((name) => file?.backend?.[name] !== undefined);
  if (blocks.length > 1) {
    throw new ConfigError(
      `at most one backend may be configured, found ${blocks.map((name) => `backend.${name}`).join(' and ')} (keep only the block of the backend you use)`,
    );
  }
  const [block] = blocks;
  if (flag !== '' && block !== undefined && flag !== block) {
    throw new ConfigError(
      `--backend ${flag} contradicts the backend.${block} block in the config file (drop --backend to use ${block}, or replace the block with backend.${flag})`,
    );
  }
  const label = flag || block || '';
  return { backend: label === '' ? 'docker' : (label as BackendName), backendLabel: label };
}

function resolveLogLevel(level: string | undefined): LogLevel {
  if (level === undefined || level === '') return 'info';
  const known = LOG_LEVELS.find((candidate) => candidate === level);
  if (!known) throw new ConfigError(`invalid --log-level ${JSON.stringify(level)}: use one of ${LOG_LEVELS.join(', ')}`);
  return known;
}

/** `--one-shot` over `one_shot`; only a backend with the capability takes it. */
function resolveOneShot(flags: WorkerFlags, file: FileConfig | undefined, backend: BackendName): boolean {
  const [oneShot, source] = flags.oneShot === undefined ? [file?.one_shot ?? false, 'one_shot in the config file'] : [flags.oneShot, '--one-shot'];
  if (oneShot && !BACKEND_CAPABILITIES[backend].oneShot) {
    const names = BACKEND_NAMES.filter((name) => BACKEND_CAPABILITIES[name].oneShot);
    const supported = names.length === 1 ? `the ${names[0]} backend` : `the ${names.slice(0, -1).join(', ')} or ${names.at(-1)} backend`;
    throw new ConfigError(
      `${source} is not supported by the ${backend} backend: one-shot mode (one task, then exit) works only with ${supported} (remove ${source === '--one-shot' ? 'the flag' : 'the key'}, or run ${supported})`,
    );
  }
  return oneShot;
}

/**
 * A given flag wins, even 0 (unlimited); then the file; then unlimited.
 * Negative means unlimited, as in the Go worker (with a warning); one-shot mode is 1.
 */
function resolveMaxConcurrentTasks(flags: WorkerFlags, file: FileConfig | undefined, oneShot: boolean, warnings: string[]): number {
  const text = flags.maxConcurrentTasks;
  let value: number;
  let where: string;
  if (text === undefined) {
    value = file?.max_concurrent_tasks ?? 0;
    where = 'max_concurrent_tasks';
  } else {
    value = /^[-+]?\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value)) {
      throw new ConfigError(`invalid --max-concurrent-tasks ${JSON.stringify(text)}: use a whole number of tasks, or 0 for unlimited`);
    }
    where = '--max-concurrent-tasks';
  }
  if (oneShot) {
    if (value !== 0 && value !== 1) warnings.push(`${where} ${value} is ignored: one-shot mode runs exactly one task`);
    return 1;
  }
  if (value < 0) {
    warnings.push(`${where} ${value} means unlimited, as 0 does; write 0`);
    return 0;
  }
  return value;
}

/** YAML `environment` entries in order; an entry without a value inherits the worker's own. */
function resolveFileEnv(entries: readonly (FileEnvEntry | undefined)[] | undefined, where: string, hostEnv: HostEnv): Record<string, string> {
  const env: Record<string, string> = {};
  (entries ?? []).forEach((entry, index) => {
    if (!entry?.name) throw new ConfigError(`${where}[${index}].name is required (write each entry as "- name: FOO" with an optional "value: bar")`);
    const value = entry.value ?? hostEnv[entry.name] ?? '';
    Object.defineProperty(env, entry.name, { value, enumerable: true, writable: true, configurable: true });
  });
  return env;
}

function durationMs(text: string, where: string): number {
  try {
    return parseGoDuration(text);
  } catch (error) {
    if (!(error instanceof InvalidDurationError)) throw error;
    throw new ConfigError(
      `invalid ${where} ${JSON.stringify(text)}: ${error.message} (write a number with a unit: ns, us, ms, s, m or h, e.g. 30s, 5m or 1h30m)`,
    );
  }
}

function resolveShutdownGrace(flags: WorkerFlags, file: FileConfig | undefined): number {
  const [text, where] = flags.shutdownGracePeriod
    ? [flags.shutdownGracePeriod, '--shutdown-grace-period']
    : [file?.shutdown_grace_period, 'shutdown_grace_period'];
  if (!text) return DEFAULT_SHUTDOWN_GRACE_MS;
  const ms = durationMs(text, where);
  if (ms < 0) throw new ConfigError(`invalid ${where} ${JSON.stringify(text)}: must not be negative (e.g. 25s)`);
  return ms;
}

function resolveCommand(file: FileConfig | undefined): CommandBackendConfig {
  const block = file?.backend?.command;
  if (!block?.dispatch_command) {
    throw new ConfigError(
      'the command backend requires a dispatch command: set backend.command.dispatch_command in the config file (it gets the task as JSON on stdin)',
    );
  }
  const timeout = block.dispatch_timeout ? durationMs(block.dispatch_timeout, 'backend.command.dispatch_timeout') : 0;
  return {
    dispatchCommand: block.dispatch_command,
    cancelCommand: block.cancel_command ?? '',
    // Zero or negative means the default, as in Go.
    dispatchTimeoutMs: timeout > 0 ? timeout : DEFAULT_DISPATCH_TIMEOUT_MS,
  };
}

function resolveKubernetes(file: FileConfig | undefined, cleanup: boolean): KubernetesBackendConfig {
  const block = file?.backend?.kubernetes ?? {};
  const timeout = (text: string | undefined, key: string, fallback: number): number =>
    text === undefined || text === '' ? fallback : Math.max(0, durationMs(text, `backend.kubernetes.${key}`));
  const activeDeadline = block.active_deadline_seconds ?? DEFAULT_ACTIVE_DEADLINE_SECONDS;
  return {
    namespace: block.namespace || DEFAULT_KUBERNETES_NAMESPACE,
    // Keys without a default are left out when unset, rather than present as undefined.
    ...(block.kubeconfig === undefined ? {} : { kubeconfig: block.kubeconfig }),
    ...(block.default_image === undefined ? {} : { defaultImage: block.default_image }),
    ...(block.sidecar_image === undefined ? {} : { sidecarImage: block.sidecar_image }),
    ...(block.coding_cli_sidecars === undefined ? {} : { codingCliSidecars: { ...block.coding_cli_sidecars } }),
    ...(block.workspace_size_limit === undefined ? {} : { workspaceSizeLimit: block.workspace_size_limit }),
    ...(block.pod_template === undefined ? {} : { podTemplate: block.pod_template }),
    imagePullPolicy: block.image_pull_policy ?? 'IfNotPresent',
    useImageVolumes: block.use_image_volumes ?? false,
    preflightImage: block.preflight_image || DEFAULT_PREFLIGHT_IMAGE,
    setupCommand: block.setup_command ?? '',
    teardownCommand: block.teardown_command ?? '',
    extraLabels: { ...block.extra_labels },
    extraAnnotations: { ...block.extra_annotations },
    // 0 means no deadline.
    activeDeadlineSeconds: activeDeadline === 0 ? undefined : activeDeadline,
    // Without cleanup finished Jobs stay.
    ttlSecondsAfterFinished: cleanup ? (block.ttl_seconds_after_finished ?? DEFAULT_TTL_SECONDS) : undefined,
    // Zero or negative disables the unschedulable check.
    unschedulableTimeoutMs: timeout(block.unschedulable_timeout, 'unschedulable_timeout', DEFAULT_UNSCHEDULABLE_TIMEOUT_MS),
    // Zero or negative: a mount failure never fails the task by itself.
    volumeMountTimeoutMs: timeout(block.volume_mount_timeout, 'volume_mount_timeout', DEFAULT_VOLUME_MOUNT_TIMEOUT_MS),
    preflightTimeoutMs: timeout(block.preflight_timeout, 'preflight_timeout', DEFAULT_PREFLIGHT_TIMEOUT_MS),
    imagePullTimeoutMs: timeout(block.image_pull_timeout, 'image_pull_timeout', DEFAULT_IMAGE_PULL_TIMEOUT_MS),
    preflightResources: block.preflight_resources ?? structuredClone(DEFAULT_PREFLIGHT_RESOURCES),
  };
}

function parseId(text: string, flag: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`invalid ${flag} ${JSON.stringify(text)}: use the numeric Warp ${flag.includes('team') ? 'team' : 'user'} id`);
  }
  return value;
}

/**
 * Device mode when the file has a `device` block or a device flag is given;
 * each flag replaces the file's value. An empty scope is refused: it would admit no task.
 */
function resolveDevice(flags: WorkerFlags, file: FileConfig | undefined): DeviceScope | undefined {
  const flagOwner = flags.deviceOwnerUserId === undefined ? undefined : parseId(flags.deviceOwnerUserId, '--device-owner-user-id');
  const flagTeams = (flags.deviceTeamId ?? []).map((text) => parseId(text, '--device-team-id'));
  const fileDevice = file?.device;
  const deviceId = flags.deviceId || fileDevice?.device_id || undefined;
  if (fileDevice === undefined && flagOwner === undefined && flagTeams.length === 0 && deviceId === undefined) return undefined;

  const ownerUserId = flagOwner ?? fileDevice?.owner_user_id;
  const teams = flagTeams.length > 0 ? flagTeams : (fileDevice?.team_ids ?? []);
  const teamIds = [...new Set(teams)];
  if (ownerUserId === undefined && teamIds.length === 0) {
    throw new ConfigError(
      'device mode needs a scope: set device.owner_user_id (or --device-owner-user-id) and/or device.team_ids (or --device-team-id), otherwise the worker would accept no task',
    );
  }
  return { ownerUserId, teamIds, ...(deviceId ? { deviceId } : {}) };
}

function checkedUrl(flag: string, text: string, protocols: readonly string[]): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || !protocols.includes(url.protocol)) {
    const schemes = protocols.map((protocol) => `${protocol}//`).join(' or ');
    throw new ConfigError(`invalid ${flag} ${JSON.stringify(text)}: use a ${schemes} URL`);
  }
  return text;
}
