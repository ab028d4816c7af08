// Before taking tasks: may this service account do what the backend needs
// (SelfSubjectAccessReview per verb), and will the cluster admit a task-shaped
// Job (the preflight Job, run to completion within a generous timeout)?
import type { V1Job } from '@kubernetes/client-node';
import type { Logger } from '../../log/logger.js';
import { podFailure } from './classify.js';
import type { AccessCheck, KubeClient } from './client.js';
import { buildPreflightJob, type PreflightSettings } from './job-builder.js';
import { errorMessage } from '../../errors/error-message.js';

/** Every permission the backend uses, and what for. */
export const REQUIRED_ACCESS: (AccessCheck & { why: string })[] = [
  { verb: 'create', group: 'batch', resource: 'jobs', why: 'to start task Jobs' },
  { verb: 'get', group: 'batch', resource: 'jobs', why: 'to adopt a Job of a re-sent assignment, and re-read a failed Job before expiring it' },
  { verb: 'list', group: 'batch', resource: 'jobs', why: 'to reattach to Jobs after a restart' },
  { verb: 'watch', group: 'batch', resource: 'jobs', why: 'to follow task Jobs' },
  { verb: 'delete', group: 'batch', resource: 'jobs', why: 'to stop cancelled tasks and remove finished Jobs' },
  { verb: 'patch', group: 'batch', resource: 'jobs', why: 'to mark Jobs whose result was reported, and to expire failed Jobs whose pods may still run' },
  { verb: 'list', group: '', resource: 'pods', why: "to find task pods, and whether a failed Job's pods have all stopped" },
  { verb: 'watch', group: '', resource: 'pods', why: 'to notice failing task pods early' },
  { verb: 'get', group: '', resource: 'pods', subresource: 'log', why: 'to log the output of failed tasks' },
  { verb: 'list', group: '', resource: 'events', why: 'to explain mount and scheduling failures' },
];

export class StartupCheckError extends Error {}

const describeAccess = (check: AccessCheck): string =>
  `${check.verb} ${check.group ? `${check.group}/` : ''}${check.resource}${check.subresource ? `/${check.subresource}` : ''}`;

/** Fails listing every missing permission; a cluster that cannot answer the review is logged and trusted. */
export async function checkPermissions(client: KubeClient, log: Logger): Promise<void> {
  let results: { check: (typeof REQUIRED_ACCESS)[number]; allowed: boolean }[];
  try {
    results = await Promise.all(REQUIRED_ACCESS.map(async (check) => ({ check, allowed: (await client.canI(check)).allowed })));
  } catch (error) {
    log.warn({ err: errorMessage(error) }, 'Could not check Kubernetes permissions; continuing, and API calls will report what is missing');
    return;
  }
  const missing = results.filter((r) => !r.allowed).map((r) => r.check);
  if (missing.length === 0) return;
  throw new StartupCheckError(
    `the worker's service account lacks permissions in namespace "${client.namespace}": ${missing
      .map((check) => `${describeAccess(check)} (${check.why})`)
      .join(', ')}; grant them in the worker's Role (see k8s/role.yaml, or install the Helm chart with rbac.create=true)`,
  );
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs a Job shaped like a task Job (root init container, or image volume) and
 * waits for it to complete: admission, Pod Security, image pulls and the
 * runtime all have to say yes. The Job is removed afterwards.
 */
export async function runPreflight(client: KubeClient, settings: PreflightSettings, timeoutMs: number, log: Logger): Promise<void> {
  const mode = settings.useImageVolumes
    ? 'the kubernetes backend mounts sidecars as image volumes; verify service account/RBAC, Pod Security or admission policy, and image-volume support of the Kubernetes version and runtime'
    : 'the kubernetes backend copies sidecars with a root init container; verify service account/RBAC and Pod Security or admission policy';
  const fail = (cause: string): never => {
    throw new StartupCheckError(
      `kubernetes startup preflight failed in namespace "${client.namespace}": ${cause}. (${mode}; set backend.kubernetes.preflight_timeout: 0s to skip this check)`,
    );
  };
  const job = buildPreflightJob(settings, process.hrtime.bigint() + BigInt(Date.now()) * 1_000_000n);
  const name = job.metadata!.name!;
  log.info({ job: name, timeoutMs }, 'Running the start-up preflight Job');
  let created: V1Job;
  try {
    created = await client.createJob(job);
  } catch (error) {
    return fail(errorMessage(error));
  }
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const current = await client.getJob(name);
      if (current?.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')) return;
      const pods = await client.listPods(`job-name=${name}`);
      if (pods.some((pod) => pod.status?.phase === 'Succeeded')) return;
      for (const pod of pods) {
        const events = pod.metadata?.uid && pod.status?.phase === 'Pending' ? await client.listEvents(`involvedObject.uid=${pod.metadata.uid}`) : undefined;
        const failure = podFailure(pod, {
          namespace: client.namespace,
          now: Date.now(),
          unschedulableTimeoutMs: 0,
          imagePullTimeoutMs: 0,
          // The preflight has its own short timeout and exists to surface incompatibilities.
          mountFailures: 'at-once',
          ...(events ? { events } : {}),
        });
        if (failure) return fail(failure.message);
      }
      if (current?.status?.conditions?.some((c) => c.type === 'Failed' && c.status === 'True')) return fail(`preflight Job "${name}" failed`);
      if (pods.length === 0 && created.metadata?.uid) {
        const events = await client.listEvents(`involvedObject.uid=${created.metadata.uid}`);
        const refused = events.find((e) => e.type === 'Warning' && e.reason === 'FailedCreate');
        if (refused) return fail(`preflight Job "${name}" could not create a Pod: ${refused.message?.trim() || 'FailedCreate'}`);
      }
      if (Date.now() > deadline) {
        return fail(
          `preflight Job "${name}" did not complete within ${Math.round(timeoutMs / 1000)} s (${pods.length === 0 ? 'no Pod was created' : `pod phase ${pods[0]!.status?.phase ?? 'unknown'}`}); raise backend.kubernetes.preflight_timeout if the cluster is slow to start pods`,
        );
      }
      await sleep(500);
    }
  } finally {
    await client
      .deleteJob(name, 'Background')
      .catch((error: unknown) => log.warn({ job: name, err: errorMessage(error) }, 'Failed to delete the start-up preflight Job'));
  }
}
