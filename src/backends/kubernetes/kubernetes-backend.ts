// The Kubernetes backend: one Job per task execution, followed through one
// shared watch. Differences from the Go worker, on purpose:
// * a cancelled task's Job is deleted (foreground), not left running;
// * a pod that fails early (image pull: at once when permanent, else after
//   image_pull_timeout; unschedulable, mount or create errors) fails the task
//   instead of pending forever; its Job is kept and expired like any failed one;
// * a restarted worker reattaches to its Jobs and reports the ones that ended
//   while it was away; a re-sent assignment adopts its existing Job;
// * `pod_template` is read strictly, and RBAC is checked verb by verb at start-up.
import type { V1Job, V1PodSpec } from '@kubernetes/client-node';
import type { WorkerConfigFor } from '../../config/worker-config.js';
import type { Logger } from '../../log/logger.js';
import { TaskCancelled, TaskFailure } from '../../task/failure.js';
import type { Backend, ExecutionOutcome, ResumableTask, TaskRun } from '../../task/contract.js';
import { createKubeClient, statusOf, type KubeClient } from './client.js';
import { taskJobFor, type JobSettings } from './job-builder.js';
import { finalizeFailedJob, JobReplacedError } from './job-expiry.js';
import { monitorJob, type MonitorResult } from './job-monitor.js';
import { executionIdOf, idHash, LABEL_EXECUTION_HASH, LABEL_EXECUTION_ID, LABEL_TASK_ID, LABEL_WORKER_HASH, workerSelector } from './names.js';
import { readPodTemplate, readResources, TemplateError } from './pod-template.js';
import { checkPermissions, runPreflight } from './startup-checks.js';
import { FailureEvents, PodWarningEvents } from './pod-events.js';
import { kubernetesFailureDetails, observedUids, type FailureObservation } from './failure-details.js';
import type { FailureDetails } from '../../protocol/messages.js';
import { literalEnvValues, PodLogStreams } from './pod-logs.js';
import { SharedTaskWatch } from './task-watch.js';
import { PodSetupTracker } from './setup-phases.js';
import { startPhase } from '../shared/setup-phase.js';
import { errorMessage } from '../../errors/error-message.js';

/** How long a task's setup phases are still read from its pod after its outcome (see trackSetupPhases). */
const SETUP_LINGER_MS = 15_000;

/** Set on a Job once its result was handed to the worker, so a restart does not report it twice. */
export const ANNOTATION_REPORTED = 'oz-worker.dev/reported';
export const LABEL_PREFLIGHT = 'oz-preflight';
const LOG_TAIL_LINES = 200;
const MAX_LOG_BYTES = 1024 * 1024;
/** The preflight Job is kept this long for a look at a failed start, then removed by Kubernetes. */
const PREFLIGHT_TTL_SECONDS = 600;

export interface KubernetesDeps {
  log: Logger;
  /** Injected in tests; by default made from the config. */
  client?: KubeClient;
  env?: NodeJS.ProcessEnv;
}

interface Settings {
  job: JobSettings;
  cleanup: boolean;
  unschedulableTimeoutMs: number;
  imagePullTimeoutMs: number;
  volumeMountTimeoutMs: number;
}

export async function createKubernetesBackend(config: WorkerConfigFor<'kubernetes'>, deps: KubernetesDeps): Promise<Backend> {
  const { log } = deps;
  const env = deps.env ?? process.env;
  const k = config.kubernetes;
  let podTemplate: V1PodSpec | undefined;
  let preflightResources;
  try {
    podTemplate = readPodTemplate(k.podTemplate);
    preflightResources = readResources(k.preflightResources);
  } catch (error) {
    if (error instanceof TemplateError) throw new Error(`${error.message} (fix backend.kubernetes in the config file)`);
    throw error;
  }
  const { namespace } = k;
  let client: KubeClient;
  try {
    client = deps.client ?? createKubeClient({ namespace, kubeconfig: k.kubeconfig, env });
  } catch (error) {
    throw new Error(`failed to build Kubernetes client config: ${errorMessage(error)}`);
  }
  let version: string;
  try {
    version = await client.version();
  } catch (error) {
    throw new Error(
      `cannot reach the Kubernetes API server at ${client.server} (${errorMessage(error)}); check backend.kubernetes.kubeconfig and network access`,
    );
  }
  log.info({ server: client.server, version, namespace }, 'Connected to the Kubernetes API server');
  await checkPermissions(client, log);

  if (k.preflightTimeoutMs > 0) {
    await runPreflight(
      client,
      {
        workerId: config.workerId,
        namespace,
        image: k.preflightImage,
        imagePullPolicy: k.imagePullPolicy,
        useImageVolumes: k.useImageVolumes,
        resources: preflightResources,
        podTemplate,
        labels: { [LABEL_PREFLIGHT]: 'true', [LABEL_WORKER_HASH]: idHash(config.workerId) },
        ttlSecondsAfterFinished: PREFLIGHT_TTL_SECONDS,
      },
      k.preflightTimeoutMs,
      log,
    );
  }

  const watch = new SharedTaskWatch(client, workerSelector(config.workerId), log);
  await watch.start();
  return new KubernetesBackend(client, watch, log, {
    cleanup: config.cleanup,
    unschedulableTimeoutMs: k.unschedulableTimeoutMs,
    imagePullTimeoutMs: k.imagePullTimeoutMs,
    volumeMountTimeoutMs: k.volumeMountTimeoutMs,
    job: jobSettingsFrom(config, podTemplate),
  });
}

/** The Job builder's settings from the worker config (also used by `oz-worker plan`). */
export function jobSettingsFrom(config: WorkerConfigFor<'kubernetes'>, podTemplate: V1PodSpec | undefined): JobSettings {
  const k = config.kubernetes;
  return {
    workerId: config.workerId,
    namespace: k.namespace,
    imagePullPolicy: k.imagePullPolicy,
    useImageVolumes: k.useImageVolumes,
    setupCommand: k.setupCommand,
    teardownCommand: k.teardownCommand,
    extraLabels: k.extraLabels,
    extraAnnotations: k.extraAnnotations,
    activeDeadlineSeconds: k.activeDeadlineSeconds,
    ttlSecondsAfterFinished: k.ttlSecondsAfterFinished,
    workspaceSizeLimit: k.workspaceSizeLimit,
    podTemplate,
    operatorEnv: config.operatorEnv,
  };
}

function createFailureText(error: unknown, namespace: string): string {
  const status = statusOf(error);
  const text = errorMessage(error);
  if (status === 403)
    return `${text}; the worker's service account may not create Jobs in namespace "${namespace}" (grant create on batch/jobs, see k8s/role.yaml)`;
  if (status === 422) return `${text}; Kubernetes rejected the Job as invalid: check backend.kubernetes.pod_template and the task's sidecars`;
  return text;
}

/** The details of a Job that was never created: its name (it has no uid, and nothing was observed). */
const unsentJobDetails = (job: V1Job): FailureDetails => ({
  kubernetes: kubernetesFailureDetails({ job }, undefined, new Date()),
});

/** The raw task id a Job runs: its OZ_RUN_ID, else the (sanitised) label. */
function taskIdOf(job: V1Job): string {
  const task = job.spec?.template?.spec?.containers?.find((c) => c.name === 'task');
  return task?.env?.find((e) => e.name === 'OZ_RUN_ID')?.value ?? job.metadata?.labels?.[LABEL_TASK_ID] ?? '';
}

class KubernetesBackend implements Backend {
  readonly name = 'kubernetes' as const;
  readonly preservesTasksOnShutdown = true;
  private readonly podEvents: PodWarningEvents;
  private readonly failureEvents: FailureEvents;

  constructor(
    private readonly client: KubeClient,
    private readonly watch: SharedTaskWatch,
    private readonly log: Logger,
    private readonly settings: Settings,
  ) {
    this.podEvents = new PodWarningEvents(client, log);
    this.failureEvents = new FailureEvents(client, log);
  }

  async executeTask(run: TaskRun): Promise<ExecutionOutcome> {
    const { name, executionHash } = await this.start(run);
    return this.follow(name, executionHash, run);
  }

  /** Creates (or adopts) the task's Job; only its name and hash outlive this, not the whole Job spec a running task would keep. */
  private async start(run: TaskRun): Promise<{ name: string; executionHash: string }> {
    const job = taskJobFor(run.params, this.settings.job);
    // Whatever the pod's environment holds literally (the task's, the operator's, the pod template's) stays out of exported logs.
    run.taskLogs?.redact(literalEnvValues(job));
    await this.createOrAdopt(job, run);
    return { name: job.metadata!.name!, executionHash: job.metadata!.labels![LABEL_EXECUTION_HASH]! };
  }

  private async createOrAdopt(job: V1Job, run: TaskRun): Promise<void> {
    const { params, log } = run;
    const name = job.metadata!.name!;
    log.info(`Creating Kubernetes Job ${name} in namespace ${this.client.namespace}`);
    const created = startPhase(run, 'setup_worker_job_create');
    try {
      await this.client.createJob(job);
      created(false);
      return;
    } catch (error) {
      // An existing Job (409) is adopted below: its creation was timed by the run that made it.
      if (statusOf(error) !== 409) {
        created(true);
        throw new TaskFailure('job_create', createFailureText(error, this.client.namespace), { cause: error, details: unsentJobDetails(job) });
      }
    }
    // AlreadyExists: the server sent this execution again. Adopt our own Job; refuse anyone else's.
    const existing = await this.client.getJob(name).catch(() => undefined);
    const labels = existing?.metadata?.labels ?? {};
    const ours =
      labels[LABEL_WORKER_HASH] === job.metadata!.labels![LABEL_WORKER_HASH] && labels[LABEL_EXECUTION_HASH] === job.metadata!.labels![LABEL_EXECUTION_HASH];
    if (!existing || !ours) {
      throw new TaskFailure(
        'job_create',
        `failed to create Kubernetes Job: a Job named ${name} already exists in namespace ${this.client.namespace} and was not started by this worker for execution ${executionIdOf(params.taskId, params.executionId)}; delete it or use another worker id`,
        { details: unsentJobDetails(job) },
      );
    }
    log.info(`Adopting the existing Kubernetes Job ${name} for this execution`);
  }

  /** Watches a Job to its end and turns that into the task's outcome. */
  private async follow(name: string, executionHash: string, run: Omit<TaskRun, 'params'>): Promise<ExecutionOutcome> {
    const tracking = run.setupPhase ? this.trackSetupPhases(executionHash, run.setupPhase) : undefined;
    try {
      return await this.monitorAndConclude(name, executionHash, run);
    } finally {
      tracking?.linger();
    }
  }

  /**
   * Reports the pod's setup phases from the pods the shared watch delivers
   * anyway (no request of its own). Jobs and pods come on two watches, so a
   * Job's end can arrive before the pod updates that carry the last phase:
   * after the outcome the tracker keeps listening (without holding the task)
   * until the pod has started its task container, or for SETUP_LINGER_MS.
   */
  private trackSetupPhases(executionHash: string, report: NonNullable<TaskRun['setupPhase']>): { linger(): void } {
    let stop = (): void => {};
    let lingering = false;
    const tracker = new PodSetupTracker((phase) => {
      report(phase.name, phase.start, phase.finish, phase.isError);
      if (lingering && phase.name === 'setup_worker_container_start') stop();
    });
    const unsubscribe = this.watch.subscribe(executionHash, { job: () => {}, pod: (pod) => tracker.observe(pod) });
    stop = () => {
      clearTimeout(timer);
      unsubscribe();
    };
    let timer: NodeJS.Timeout | undefined;
    return {
      linger: () => {
        if (tracker.has('setup_worker_container_start')) return stop();
        lingering = true;
        timer = setTimeout(stop, SETUP_LINGER_MS).unref();
      },
    };
  }

  private async monitorAndConclude(name: string, executionHash: string, run: Omit<TaskRun, 'params'>): Promise<ExecutionOutcome> {
    const { log, signal } = run;
    const streams = run.taskLogs ? new PodLogStreams(this.client, run.taskLogs, log) : undefined;
    const result = await monitorJob({
      client: this.client,
      watch: this.watch,
      events: this.podEvents,
      log,
      jobName: name,
      executionHash,
      signal,
      unschedulableTimeoutMs: this.settings.unschedulableTimeoutMs,
      imagePullTimeoutMs: this.settings.imagePullTimeoutMs,
      volumeMountTimeoutMs: this.settings.volumeMountTimeoutMs,
      onPod: streams && ((pod) => streams.observe(pod)),
    });
    // Gathered while the outcome is concluded (log tail, Job kept or removed), so it seldom adds to the wait.
    const details = 'observed' in result ? this.failureDetails(result.observed, log) : undefined;
    // The last lines reach the export before the Job (and its pods' logs) may go.
    await streams?.finish(() => this.client.listPods(`${LABEL_EXECUTION_HASH}=${executionHash}`));
    try {
      return await this.conclude(name, executionHash, result, log);
    } catch (error) {
      if (error instanceof TaskFailure && details) error.details ??= await details;
      throw error;
    }
  }

  /** A failure's details: what was observed, with the recent events of its pod and Job (bounded wait; none when they cannot be listed). */
  // Never rejects: it runs beside the outcome (nothing awaits it until a failure is thrown), and
  // details are an aid, so an object the projection cannot read costs the details, not the worker.
  private async failureDetails(observed: FailureObservation, log: Logger): Promise<FailureDetails | undefined> {
    const uids = observedUids(observed);
    const events = uids.length > 0 ? await this.failureEvents.of(uids).catch(() => undefined) : undefined;
    try {
      return { kubernetes: kubernetesFailureDetails(observed, events, new Date()) };
    } catch (error) {
      log.warn(`Could not build the failure details of this task; reporting the failure without them: ${errorMessage(error)}`);
      return undefined;
    }
  }

  private async conclude(name: string, executionHash: string, result: MonitorResult, log: Logger): Promise<ExecutionOutcome> {
    const { cleanup } = this.settings;
    const namespace = this.client.namespace;
    switch (result.kind) {
      case 'complete':
        if (log.isLevelEnabled('debug')) log.debug(`Job ${name} output:\n${await this.collectLogs(executionHash)}`);
        if (cleanup) await this.remove(name, 'Background', log);
        else await this.markReported(name, log);
        return { kind: 'completed' };
      case 'cancelled':
        // Cancellation stops the work: the Job and its pods go (foreground, so nothing keeps running).
        log.info(`Deleting Kubernetes Job ${name} after cancellation`);
        await this.remove(name, 'Foreground', log);
        throw new TaskCancelled();
      case 'deleted':
        throw new TaskFailure(
          'job_failed',
          `kubernetes Job ${name} in namespace ${namespace} was deleted before it finished, not by this worker; check who removed it (kubectl get events -n ${namespace})`,
        );
      case 'job-failed': {
        log.info(`Job ${name} output:\n${await this.collectLogs(executionHash)}`);
        await this.markReported(name, log);
        if (cleanup) log.info(`Leaving failed Kubernetes Job ${name} in place for TTL-based cleanup`);
        throw new TaskFailure(result.reason, result.message, { exitCode: result.pod?.exitCode ?? 0 });
      }
      case 'pod-failed': {
        log.info(`Pod ${result.podName} output:\n${await this.collectLogs(executionHash)}`);
        // Kept for a look, as a Job that failed by itself is; stopped first if its pod may still run.
        const kept = await this.expireFailedJob(name, executionHash, result, log);
        if (kept === 'mark') await this.markReported(name, log);
        if (kept !== 'none' && cleanup) log.info(`Leaving failed Kubernetes Job ${name} in place for TTL-based cleanup`);
        throw new TaskFailure(result.failure.reason, result.failure.message, { exitCode: result.failure.exitCode });
      }
    }
  }

  /**
   * Stops a failed task's Job without deleting it (job-expiry.ts); the expiry
   * patch marks it reported too. Never throws: a Job that may still run is logged
   * with what to do, and the task's failure is reported all the same. Says whether
   * the Job is kept and marked, kept and still to be marked, or not there to keep.
   */
  private async expireFailedJob(
    name: string,
    executionHash: string,
    result: Extract<MonitorResult, { kind: 'pod-failed' }>,
    log: Logger,
  ): Promise<'marked' | 'mark' | 'none'> {
    const namespace = this.client.namespace;
    try {
      const outcome = await finalizeFailedJob({
        client: this.client,
        log,
        name,
        observed: result.job,
        executionHash,
        disposition: result.disposition,
        annotations: { [ANNOTATION_REPORTED]: 'true' },
      });
      if (outcome === 'gone') return 'none';
      if (outcome !== 'expired') return 'mark';
      log.info(
        `Requested expiration of abandoned Kubernetes Job ${name}; retaining it ${this.settings.cleanup ? 'according to its TTL' : 'with no TTL (cleanup is off)'}`,
      );
      return 'marked';
    } catch (error) {
      if (error instanceof JobReplacedError) {
        log.error(errorMessage(error));
        return 'none';
      }
      log.error(
        `job expiration failed for Kubernetes Job ${name} in namespace ${namespace}: ${errorMessage(error)}; its pods may still be running (stop them with kubectl delete job ${name} -n ${namespace})`,
      );
      return 'mark';
    }
  }

  private async remove(name: string, propagation: 'Foreground' | 'Background', log: Logger): Promise<void> {
    try {
      await this.client.deleteJob(name, propagation);
    } catch (error) {
      log.warn(`Failed to delete Job ${name}: ${errorMessage(error)}`);
    }
  }

  private async markReported(name: string, log: Logger): Promise<void> {
    try {
      await this.client.annotateJob(name, { [ANNOTATION_REPORTED]: 'true' });
    } catch (error) {
      log.warn(`Could not mark Job ${name} as reported (a restarted worker may report it again): ${errorMessage(error)}`);
    }
  }

  /** The last lines of every container of the execution's pods, for the worker log. */
  private async collectLogs(executionHash: string): Promise<string> {
    const sections: string[] = [];
    let size = 0;
    for (const pod of this.watch.podsOf(executionHash)) {
      const name = pod.metadata?.name ?? '';
      for (const container of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
        const text = await this.client.podLog(name, container.name, LOG_TAIL_LINES).catch(() => '');
        if (!text) continue;
        size += text.length;
        if (size > MAX_LOG_BYTES) break;
        sections.push(`[${name}/${container.name}]\n${text}`);
      }
    }
    return sections.join('\n');
  }

  async cancelTask(): Promise<void> {
    // The task's abort signal deletes its Job (see conclude).
  }

  /** Jobs of this worker that outlived its previous run, minus those already reported. */
  async resumableTasks(): Promise<ResumableTask[]> {
    const jobs = await this.client.listJobs(workerSelector(this.settings.job.workerId));
    const leftovers = jobs.filter((job) => job.metadata?.labels?.[LABEL_PREFLIGHT] === 'true');
    for (const job of leftovers) await this.remove(job.metadata!.name!, 'Background', this.log);
    return jobs
      .filter((job) => job.metadata?.labels?.[LABEL_PREFLIGHT] !== 'true' && job.metadata?.annotations?.[ANNOTATION_REPORTED] !== 'true')
      .map((job): ResumableTask => {
        const name = job.metadata!.name!;
        const labels = job.metadata!.labels!;
        return {
          taskId: taskIdOf(job),
          executionId: labels[LABEL_EXECUTION_ID] ?? '',
          resume: (run) => this.follow(name, labels[LABEL_EXECUTION_HASH] ?? '', run),
        };
      });
  }

  async shutdown(): Promise<void> {
    this.log.info('Preserving Kubernetes task Jobs during worker shutdown');
    await this.watch.stop();
    this.client.close();
  }
}
