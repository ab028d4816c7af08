// The Docker backend: one container per task from the task's image, with each
// sidecar image's files mounted from a volume and `/agent/entrypoint.sh`
// running the agent.
//
// Differences from the Go worker, on purpose:
// * pull errors reported inside the (200 OK) progress stream fail the pull;
// * sidecar volumes are complete before they are shared, read-write sidecars
//   get a volume per task, and no helper container is left behind;
// * the container's output is streamed to the log as it happens, stdout and
//   stderr separated, line by line;
// * a cancel (or worker shutdown) stops the container with a grace period
//   (SIGTERM, then SIGKILL), also when cleanup is disabled;
// * containers and volumes carry labels (worker id, run id), so leftovers of a
//   crashed worker are removed when it starts again;
// * the container also gets OZ_RUN_ID and OZ_WORKER_BACKEND (and their WARP_ aliases), like the other backends;
// * instance_shape.vcpus above the host's CPUs is clamped (with a warning) instead of
//   failing container create.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { WorkerConfigFor } from '../../config/worker-config.js';
import type { Logger } from '../../log/logger.js';
import { TaskCancelled, TaskFailure } from '../../task/failure.js';
import type { Backend, ExecutionOutcome, TaskLogWriter, TaskRun } from '../../task/contract.js';
import { throwIfCancelled } from '../shared/cancellation.js';
import { withCleanup } from '../shared/cleanup.js';
import { startPhase } from '../shared/setup-phase.js';
import { LineSplitter } from '../shared/output-lines.js';
import { checkTaskImages, invalidReferenceText, LABELS, sidecarBind, taskContainerName, taskContainerSpec } from './container-spec.js';
import { discoverDocker, DockerDiscoveryError, type DockerEndpoint } from './discovery.js';
import { connectionProblem, errorText, HttpDockerEngine, isNotFound, type DockerEngine, type ImageInfo } from './engine.js';
import { fullName, parseImageRef, pullTag, type ImageRef } from './reference.js';
import { registryAuthFor, type CredentialHelper } from './registry-auth.js';
import { SidecarVolumes } from './sidecars.js';
import { isPullMilestone, LogDemuxer, type LogStream } from './streams.js';
import { errorMessage } from '../../errors/error-message.js';

export const PING_TIMEOUT_MS = 5_000;
export const SUPPORTED_PLATFORMS = ['linux/amd64', 'linux/arm64'];
/** How long output may still arrive after the container stopped. */
const LOG_SETTLE_MS = 5_000;
/** Extra time the daemon gets, beyond the grace period, to confirm a stop before we kill. */
const STOP_SLACK_MS = 15_000;

export interface DockerBackendDeps {
  log: Logger;
  /** The worker's environment (default `process.env`): DOCKER_HOST and friends. */
  env?: NodeJS.ProcessEnv;
  /** The worker user's home (default `os.homedir()`), for ~/.docker. */
  home?: string | undefined;
  /** An Engine client to use instead of discovering the daemon. */
  engine?: DockerEngine;
  credentialHelper?: CredentialHelper;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Finds and checks the daemon (fatal on failure, with what to do), then removes leftovers of earlier runs. */
export async function createDockerBackend(config: WorkerConfigFor<'docker'>, deps: DockerBackendDeps): Promise<Backend> {
  const { log } = deps;
  const env = deps.env ?? process.env;
  const home = deps.home ?? homedir();
  let engine = deps.engine;
  let endpoint: DockerEndpoint | undefined;
  if (!engine) {
    let discovery;
    try {
      discovery = discoverDocker({ env, home, readFile: readText, exists: existsSync });
    } catch (error) {
      if (error instanceof DockerDiscoveryError) throw new Error(`failed to create Docker client: ${error.message}`);
      throw error;
    }
    endpoint = discovery.endpoint;
    log.debug(`Using the Docker daemon at ${endpoint.url} (from ${discovery.source})`);
    try {
      engine = new HttpDockerEngine(endpoint, discovery.apiVersion);
    } catch (error) {
      // Only TLS files can fail here.
      throw new Error(
        `failed to create Docker client: cannot read the TLS files for ${endpoint.url} (${discovery.source}): ${errorText(error)}; check DOCKER_CERT_PATH`,
      );
    }
  }
  let platform: string;
  try {
    try {
      await engine.ping(PING_TIMEOUT_MS);
    } catch (error) {
      throw new Error(`failed to reach Docker daemon: ${endpoint ? connectionProblem(error, endpoint) : errorText(error)}`);
    }
    let version;
    try {
      version = await engine.version();
    } catch (error) {
      throw new Error(`failed to get Docker version: ${errorText(error)}`);
    }
    platform = `${version.Os ?? ''}/${version.Arch ?? ''}`;
    if (!SUPPORTED_PLATFORMS.includes(platform)) {
      throw new Error(`unsupported Docker platform ${platform} (only linux/amd64 and linux/arm64 are supported)`);
    }
  } catch (error) {
    await engine.close().catch(() => undefined);
    throw error;
  }
  // Only for clamping CPU requests: without it the daemon's own check applies.
  const hostCpus = await engine.info().then(
    (info) => (typeof info.NCPU === 'number' && info.NCPU > 0 ? info.NCPU : undefined),
    (error: unknown) => {
      log.warn(`Could not read the Docker host's CPU count (${errorText(error)}); instance shapes are passed on unchanged`);
      return undefined;
    },
  );
  log.info(`Docker daemon is reachable${endpoint ? ` at ${endpoint.url}` : ''}, platform: ${platform}${hostCpus ? `, ${hostCpus} CPUs` : ''}`);
  const backend = new DockerBackend({ config, log, env, home, engine, platform, hostCpus, credentialHelper: deps.credentialHelper });
  await backend.removeLeftovers();
  return backend;
}

interface Settings {
  config: WorkerConfigFor<'docker'>;
  log: Logger;
  env: NodeJS.ProcessEnv;
  home: string;
  engine: DockerEngine;
  platform: string;
  hostCpus: number | undefined;
  credentialHelper: CredentialHelper | undefined;
}

/** What one task holds that cleanup must release. */
interface TaskResources {
  containerName: string;
  container: string | undefined;
  /** Per-task volumes (read-write sidecars). */
  volumes: string[];
  /** A stop in progress (cancel or shutdown). */
  stopping: Promise<void> | undefined;
}

/** `promise`, or a TaskCancelled as soon as `signal` fires (the work itself goes on). */
function unlessCancelled<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new TaskCancelled());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new TaskCancelled());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** A hint for pull failures people can fix themselves. */
function pullHint(text: string): string {
  if (/unauthorized|denied|authentication required|no basic auth/i.test(text)) {
    return "; log in to the registry as the worker's user (docker login) or check the credentials in ~/.docker/config.json";
  }
  if (/not found|manifest unknown|does not exist/i.test(text)) return '; check that the image name and tag exist in the registry';
  if (/dial tcp|no such host|connection refused|i\/o timeout|TLS handshake timeout|network is unreachable/i.test(text)) {
    return '; the Docker host cannot reach the registry: check its network (or proxy), or load the image on the engine and set backend.docker.image_pull_policy to IfNotPresent';
  }
  return '';
}

class DockerBackend implements Backend {
  readonly name = 'docker' as const;
  readonly preservesTasksOnShutdown = false;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly sidecars: SidecarVolumes;

  constructor(private readonly settings: Settings) {
    this.sidecars = new SidecarVolumes(settings.engine, settings.config.workerId);
  }

  executeTask(run: TaskRun): Promise<ExecutionOutcome> {
    const execution = this.execute(run);
    this.track(execution);
    return execution;
  }

  private track(work: Promise<unknown>): void {
    this.inFlight.add(work);
    const forget = (): void => void this.inFlight.delete(work);
    work.then(forget, forget);
  }

  /** Waits for running tasks' cleanup, then closes the connection to the daemon. */
  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
    await this.settings.engine.close().catch((error: unknown) => this.settings.log.warn(`Failed to close the Docker client: ${errorText(error)}`));
  }

  /**
   * Removes what an earlier run of this worker (same worker id) left behind:
   * its containers (running ones are stopped first), per-task sidecar volumes
   * and half-filled sidecar volumes. With cleanup disabled, containers and
   * per-task volumes are kept, but running containers are still stopped.
   */
  async removeLeftovers(): Promise<void> {
    const { engine, config, log } = this.settings;
    const mine = `${LABELS.workerId}=${config.workerId}`;
    try {
      const containers = await engine.listContainers([mine]);
      await Promise.all(
        containers.map(async (container) => {
          const name = container.Names?.[0]?.replace(/^\//, '') ?? container.Id.slice(0, 12);
          const run = container.Labels?.[LABELS.runId];
          const what = `leftover container ${name}${run ? ` (run ${run})` : ''} from an earlier run of this worker`;
          try {
            if (config.cleanup) {
              await engine.removeContainer(container.Id, { force: true, volumes: true });
              log.info(`Removed ${what}`);
            } else if (container.State === 'running' || container.State === 'paused' || container.State === 'restarting') {
              await engine.killContainer(container.Id);
              log.info(`Stopped ${what}; kept it because cleanup is disabled`);
            }
          } catch (error) {
            if (!isNotFound(error)) log.warn(`Failed to remove ${what}: ${errorText(error)}`);
          }
        }),
      );
      const volumes = await engine.listVolumes([mine]);
      const markers = await engine.listVolumes([`${LABELS.role}=sidecar-ready`]);
      const complete = new Set(markers.map((marker) => marker.Labels?.[LABELS.sidecarData]));
      await Promise.all(
        volumes.map(async (volume) => {
          const role = volume.Labels?.[LABELS.role];
          const leftover = (role === 'task-sidecar' && config.cleanup) || (role === 'sidecar-data' && !complete.has(volume.Name));
          if (!leftover) return;
          try {
            await engine.removeVolume(volume.Name);
            log.info(`Removed leftover volume ${volume.Name} from an earlier run of this worker`);
          } catch (error) {
            if (!isNotFound(error)) log.warn(`Failed to remove leftover volume ${volume.Name}: ${errorText(error)}`);
          }
        }),
      );
    } catch (error) {
      log.warn(`Could not look for leftovers of an earlier run: ${errorText(error)}`);
    }
  }

  private async execute(run: TaskRun): Promise<ExecutionOutcome> {
    const { params, log } = run;
    const resources: TaskResources = { containerName: taskContainerName(params.taskId), container: undefined, volumes: [], stopping: undefined };
    return withCleanup(
      run,
      () => this.runTask(run, resources),
      () => {
        const cleanup = this.cleanUp(run, resources).catch((error: unknown) => log.warn(`Cleanup after the task failed: ${errorText(error)}`));
        this.track(cleanup);
        return cleanup;
      },
    );
  }

  private async runTask(run: TaskRun, resources: TaskResources): Promise<ExecutionOutcome> {
    const { params, signal, log } = run;
    const { engine, config } = this.settings;
    throwIfCancelled(signal);
    checkTaskImages(params);

    try {
      await this.pull(params.image, run, { timed: true });
    } catch (error) {
      throwIfCancelled(signal);
      throw new TaskFailure('image_pull', errorMessage(error), { cause: error });
    }

    const sidecarBinds: string[] = [];
    // Timed only when there is something to prepare (a 0 ms sample says nothing).
    const sidecarPrep = params.sidecars.length > 0 ? startPhase(run, 'setup_worker_sidecar_prep') : undefined;
    for (const [index, sidecar] of params.sidecars.entries()) {
      log.info(`Preparing additional sidecar: image=${sidecar.image}, mount=${sidecar.mount_path}${sidecar.read_write ? ' (read-write)' : ''}`);
      let image: ImageInfo;
      try {
        image = await this.pull(sidecar.image, run);
      } catch (error) {
        sidecarPrep?.(true);
        throwIfCancelled(signal);
        throw new TaskFailure('sidecar_prep', `failed to pull additional sidecar image ${sidecar.image}: ${errorMessage(error)}`, { cause: error });
      }
      let volume: string;
      try {
        if (sidecar.read_write) {
          const name = `${resources.containerName}-sidecar-${index}`;
          resources.volumes.push(name);
          volume = await this.sidecars.perTask(sidecar, name, params, log);
        } else {
          volume = await unlessCancelled(this.sidecars.shared(sidecar.image, image.Id, log), signal);
        }
      } catch (error) {
        sidecarPrep?.(true);
        throwIfCancelled(signal);
        throw new TaskFailure('sidecar_prep', `failed to prepare additional sidecar ${sidecar.image}: ${errorText(error)}`, { cause: error });
      }
      sidecarBinds.push(sidecarBind(volume, sidecar));
    }
    sidecarPrep?.(false);
    throwIfCancelled(signal);

    const { body, warning } = taskContainerSpec({
      params,
      workerId: config.workerId,
      operatorEnv: config.operatorEnv,
      sidecarBinds,
      volumes: config.docker.volumes,
      hostCpus: this.settings.hostCpus,
    });
    if (warning) log.warn(warning);
    run.taskLogs?.redact(Object.values(config.operatorEnv));
    const containerStart = startPhase(run, 'setup_worker_container_start');
    try {
      resources.container = await engine.createContainer(resources.containerName, body);
    } catch (error) {
      containerStart(true);
      throw new TaskFailure('container_create', `failed to create container: ${errorText(error)}`, { cause: error });
    }
    const id = resources.container;
    log.info({ container: resources.containerName }, `Created container ${resources.containerName} (${id.slice(0, 12)}) from ${params.image}`);

    const stopOnAbort = (): void => {
      resources.stopping ??= this.stop(id, resources.containerName, log);
    };
    signal.addEventListener('abort', stopOnAbort, { once: true });
    try {
      throwIfCancelled(signal);
      try {
        await engine.startContainer(id);
      } catch (error) {
        containerStart(true);
        throw new TaskFailure('container_start', `failed to start container: ${errorText(error)}`, { cause: error });
      }
      containerStart(false);
      const logsStop = new AbortController();
      const logsDone = this.followLogs(id, log, logsStop.signal, run.output, containerLogWriters(run, resources.containerName));
      let result;
      try {
        result = await engine.waitContainer(id);
      } catch (error) {
        logsStop.abort();
        throwIfCancelled(signal);
        throw new TaskFailure('container_wait', `error waiting for container: ${errorText(error)}`, { cause: error });
      }
      // Let the last lines arrive, but never hang on a stream that does not end.
      await Promise.race([logsDone, delay(LOG_SETTLE_MS, undefined, { ref: false })]);
      logsStop.abort();
      if (signal.aborted) {
        await resources.stopping;
        throw new TaskCancelled();
      }
      if (result.Error?.Message) throw new TaskFailure('container_wait', `error waiting for container: ${result.Error.Message}`);
      const code = result.StatusCode;
      if (code === 0) {
        log.info(`Task ${params.taskId} execution completed successfully`);
        return { kind: 'completed' };
      }
      const oomKilled = await engine.inspectContainer(id).then(
        (info) => info.State?.OOMKilled === true,
        () => false,
      );
      const message = `container exited with non-zero status: ${code}`;
      if (!oomKilled) throw new TaskFailure('container_exit', message, { exitCode: code });
      const memory = params.instanceShape?.memory_gb;
      throw new TaskFailure(
        'container_oom',
        `${message} (out of memory: the kernel killed the task${memory && memory > 0 ? ` at its ${memory} GiB limit; run it on a larger instance shape` : ''})`,
        { exitCode: code },
      );
    } finally {
      signal.removeEventListener('abort', stopOnAbort);
    }
  }

  /** The image as the engine has it, or undefined when it has none by that name. */
  private async localImage(image: string): Promise<ImageInfo | undefined> {
    try {
      return await this.settings.engine.inspectImage(image);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw new Error(`failed to inspect image ${image}: ${errorText(error)}`, { cause: error });
    }
  }

  private checkPlatform(image: string, info: ImageInfo): ImageInfo {
    const { platform } = this.settings;
    const imagePlatform = `${info.Os ?? ''}/${info.Architecture ?? ''}`;
    if (imagePlatform !== platform) throw new Error(`image ${image} is for platform ${imagePlatform}, but this worker requires ${platform}`);
    return info;
  }

  /**
   * The image, pulled for the daemon's platform as `backend.docker.image_pull_policy`
   * says (the Go worker's rules: Always pulls; IfNotPresent and Never use the
   * engine's copy, and an inspect error other than not-found fails without a
   * pull; Never never pulls), and checked; errors are Go-worded. `timed`: a
   * pull that runs is the task's image-pull setup phase, from the pull to the
   * platform check (sidecar pulls count as sidecar preparation).
   */
  private async pull(image: string, run: TaskRun, options: { timed?: boolean } = {}): Promise<ImageInfo> {
    const { env, home, credentialHelper, config } = this.settings;
    const { log } = run;
    const ref = parseImageRef(image);
    if (!ref) throw new Error(invalidReferenceText(image));
    const policy = config.docker.pullPolicy;
    if (policy !== 'Always') {
      const present = await this.localImage(image);
      if (present) {
        log.info(`Using image ${image} already on the Docker engine (image_pull_policy ${policy})`);
        return this.checkPlatform(image, present);
      }
      if (policy === 'Never') {
        throw new Error(
          `image ${image} is not on the Docker engine and the pull policy is Never (backend.docker.image_pull_policy): load it first (docker pull or docker load on the worker's host), or set image_pull_policy to IfNotPresent`,
        );
      }
    }
    const registryAuth = await registryAuthFor(image, { env, home, helper: credentialHelper }, log);
    const pulled = options.timed ? startPhase(run, 'setup_worker_image_pull') : undefined;
    try {
      const info = await this.pullAndCheck(image, ref, registryAuth, run);
      pulled?.(false);
      return info;
    } catch (error) {
      pulled?.(true);
      throw error;
    }
  }

  /** The pull itself, then the pulled image's inspect and platform check. */
  private async pullAndCheck(image: string, ref: ImageRef, registryAuth: string | undefined, run: TaskRun): Promise<ImageInfo> {
    const { engine, platform } = this.settings;
    const { log, signal } = run;
    log.info(`Pulling image: ${image}`);
    try {
      await engine.pullImage(fullName(ref), pullTag(ref), {
        platform,
        registryAuth,
        signal,
        onEvent: (event) => {
          if (isPullMilestone(event)) log.debug({ image }, `${event.id ? `${event.id}: ` : ''}${event.status}`);
        },
      });
    } catch (error) {
      const text = errorText(error);
      throw new Error(`failed to pull image ${image}: ${text}${pullHint(text)}`, { cause: error });
    }
    let info: ImageInfo;
    try {
      info = await engine.inspectImage(image);
    } catch (error) {
      throw new Error(`failed to inspect pulled image ${image}: ${errorText(error)}`, { cause: error });
    }
    this.checkPlatform(image, info);
    log.info(`Successfully pulled image: ${image}`);
    return info;
  }

  /** Streams the container's output to the log, line by line (and to the task's log export), until it ends or `signal` fires. */
  private async followLogs(
    id: string,
    log: Logger,
    signal: AbortSignal,
    output: TaskRun['output'],
    exported: Record<LogStream, TaskLogWriter> | undefined,
  ): Promise<void> {
    const lines = {
      stdout: new LineSplitter((line) => {
        log.info({ stream: 'stdout' }, line);
        output?.('stdout', line);
      }),
      stderr: new LineSplitter((line) => {
        log.info({ stream: 'stderr' }, line);
        output?.('stderr', line);
      }),
    };
    const demuxer = new LogDemuxer((stream, data) => {
      lines[stream].push(data);
      exported?.[stream].write(data);
    });
    try {
      const stream = await this.settings.engine.containerLogs(id, signal);
      for await (const chunk of stream) demuxer.push(chunk as Buffer);
    } catch (error) {
      if (!signal.aborted) log.warn(`Failed to read container logs: ${errorText(error)}`);
    } finally {
      lines.stdout.end();
      lines.stderr.end();
      exported?.stdout.end();
      exported?.stderr.end();
    }
  }

  /** SIGTERM with the cancel grace period; Docker sends SIGKILL after it. Kills directly if the stop fails. */
  private async stop(id: string, name: string, log: Logger): Promise<void> {
    const { engine, config } = this.settings;
    const graceSeconds = Math.max(0, Math.ceil(config.cancelGraceMs / 1000));
    log.info(`Stopping container ${name}: SIGTERM, then SIGKILL after ${graceSeconds}s`);
    try {
      await engine.stopContainer(id, graceSeconds, config.cancelGraceMs + STOP_SLACK_MS);
    } catch (error) {
      if (isNotFound(error)) return;
      log.warn(`Failed to stop container ${name}: ${errorText(error)}; killing it`);
      await engine.killContainer(id).catch((killError: unknown) => {
        if (!isNotFound(killError)) log.warn(`Failed to kill container ${name}: ${errorText(killError)}`);
      });
    }
  }

  /** After the outcome: the container goes (unless cleanup is off), then the task's own volumes. */
  private async cleanUp(run: TaskRun, resources: TaskResources): Promise<void> {
    const { log } = run;
    const { engine, config } = this.settings;
    await resources.stopping;
    if (resources.container !== undefined) {
      if (config.cleanup) {
        try {
          // v=1 also removes the image's anonymous volumes; named volumes stay.
          await engine.removeContainer(resources.container, { force: true, volumes: true });
          log.debug(`Removed container ${resources.containerName}`);
        } catch (error) {
          if (!isNotFound(error)) log.warn(`Failed to remove container ${resources.containerName}: ${errorText(error)}`);
        }
      } else {
        log.info(`Keeping container ${resources.containerName} (cleanup disabled)`);
      }
    }
    for (const volume of resources.volumes) {
      if (config.cleanup) await this.sidecars.removeVolume(volume, log);
      else log.info(`Keeping volume ${volume} (cleanup disabled)`);
    }
  }
}

/** The container's streams for the task's log export: `container.stdout`/`container.stderr`, named as the Go worker names them. */
function containerLogWriters(run: TaskRun, containerName: string): Record<LogStream, TaskLogWriter> | undefined {
  const logs = run.taskLogs;
  if (!logs) return undefined;
  const name = containerName.replace(/^\//, '');
  return {
    stdout: logs.writer('container.stdout', { 'container.name': name, 'log.iostream': 'stdout' }),
    stderr: logs.writer('container.stderr', { 'container.name': name, 'log.iostream': 'stderr' }),
  };
}
