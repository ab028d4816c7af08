// finalizeFailedJob through the real client against the fake Kubernetes API on
// loopback, which applies merge patches with their resourceVersion and uid
// preconditions as the API server does. The cases follow the Go worker's
// kubernetes_expiration_integration_test.go (1b2e5622): which failed Jobs are
// expired, what the patch changes and what it leaves, retries on conflict with
// a re-read and an identity check each time.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { createKubeClient, type KubeClient } from '../../src/backends/kubernetes/client.js';
import { type FailureDisposition, finalizeFailedJob, JobReplacedError } from '../../src/backends/kubernetes/job-expiry.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { tempDir } from '../support/worker-process.js';

const EXPIRY = '{"metadata":{"resourceVersion":"RV","uid":"UID"},"spec":{"activeDeadlineSeconds":1,"parallelism":0,"suspend":false}}';
const HASH = 'feedfacefeedface';

let api: FakeKubeApi;
let client: KubeClient;
let dir: { path: string; cleanup(): void };
let serial = 0;
let logs: { level: number; msg: string }[] = [];
let sleeps: number[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });

beforeAll(async () => {
  api = await FakeKubeApi.start();
  // Nothing here starts on its own: the tests set each Job's pods.
  api.stepMs = 5;
  dir = tempDir('expiry');
  client = createKubeClient({ namespace: 'agents', kubeconfig: api.writeKubeconfig(dir.path) });
});
afterAll(async () => {
  client?.close();
  await api?.close();
  dir?.cleanup();
});
beforeEach(() => {
  logs = [];
  sleeps = [];
});

/** A task Job as the worker made it (backoffLimit 0), with the TTL cleanup gives it unless `noCleanup`. */
function insertJob(options: { noCleanup?: boolean; backoffLimit?: number; suspend?: boolean } = {}) {
  const name = `oz-task-expiry-${++serial}`;
  return api.insertJob({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: 'agents', labels: { 'oz-execution-hash': HASH } },
    spec: {
      backoffLimit: options.backoffLimit ?? 0,
      activeDeadlineSeconds: 28800,
      ...(options.noCleanup ? {} : { ttlSecondsAfterFinished: 86400 }),
      ...(options.suspend ? { suspend: true } : {}),
      template: { metadata: { labels: { 'oz-execution-hash': HASH } }, spec: { restartPolicy: 'Never', containers: [{ name: 'task', image: 'x' }] } },
    },
  });
}

const failedStatus = {
  phase: 'Failed',
  containerStatuses: [{ name: 'task', ready: false, restartCount: 0, image: 'x', imageID: '', state: { terminated: { exitCode: 1, reason: 'Error' } } }],
};
const runningStatus = {
  phase: 'Running',
  containerStatuses: [{ name: 'task', ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: {} } }],
};

const finalize = (job: { metadata: Record<string, any> }, disposition: FailureDisposition, observed = structuredClone(job)) =>
  finalizeFailedJob({
    client,
    log,
    name: job.metadata.name,
    observed: observed as never,
    executionHash: HASH,
    disposition,
    sleep: async (ms) => void sleeps.push(ms),
    random: () => 0,
  });

const patchesOf = (name: string) => api.patches.filter((p) => p.name === name);
const expiryBody = (rv: string, uid: string) => EXPIRY.replace('RV', rv).replace('UID', uid);

describe('a failed pod, before the Job status catches up (execution stopped)', () => {
  // [case, whether the failed pod exists, what else there is, expired?]
  const cases: [string, boolean, (job: any) => void, boolean][] = [
    ['the failed pod is the only pod', true, () => undefined, false],
    ['another pod of this Job is Running', true, (job) => api.insertPod(`${job.metadata.name}-b`, runningStatus, job), true],
    ['another pod of this Job is Pending', true, (job) => api.insertPod(`${job.metadata.name}-b`, { phase: 'Pending' }, job), true],
    [
      'an unrelated Running pod (another owner) carries the label',
      true,
      (job) => {
        const other = api.insertPod(`${job.metadata.name}-other`, runningStatus, job);
        other.metadata.ownerReferences[0].uid = 'someone-else';
      },
      false,
    ],
    ['the failed pod is missing', false, () => undefined, true],
    ['listing pods fails (403)', true, () => api.fail('GET', /\/pods$/, 403), true],
  ];
  for (const noCleanup of [false, true]) {
    it.each(cases)(`%s → expired: %s (cleanup ${noCleanup ? 'off' : 'on'})`, async (what, withFailedPod, arrange, expired) => {
      const job = insertJob({ noCleanup });
      const failedPod = withFailedPod ? api.insertPod(`${job.metadata.name}-a`, failedStatus, job) : undefined;
      arrange(job);
      const outcome = await finalize(job, 'execution-stopped');
      expect(outcome).toBe(expired ? 'expired' : 'stopped');
      const patches = patchesOf(job.metadata.name);
      expect(patches.map((p) => p.body)).toEqual(expired ? [expiryBody(job.metadata.resourceVersion, job.metadata.uid)] : []);
      if (expired) expect(patches[0]!.contentType).toBe('application/merge-patch+json');
      // The failed pod is never deleted; the TTL is what cleanup made it.
      if (failedPod) expect(api.pods().some((p) => p.metadata.name === failedPod.metadata.name)).toBe(true);
      expect(api.job(job.metadata.name)!.spec.ttlSecondsAfterFinished).toBe(noCleanup ? undefined : 86400);
      if (what.startsWith('listing pods fails'))
        expect(logs.map((l) => l.msg)).toContainEqual(expect.stringMatching(/^Cannot confirm execution stopped for Job /));
    });
  }

  it('backoffLimit 1 (a retry could start the work again) → expired', async () => {
    const job = insertJob({ backoffLimit: 1 });
    api.insertPod(`${job.metadata.name}-a`, failedStatus, job);
    expect(await finalize(job, 'execution-stopped')).toBe('expired');
  });
});

describe('a pod that may still run (termination required)', () => {
  it('is expired: the Job controller stops the pod and fails the Job with DeadlineExceeded; the Job stays', async () => {
    const job = insertJob();
    api.insertPod(`${job.metadata.name}-a`, runningStatus, job);
    expect(await finalize(job, 'termination-required')).toBe('expired');
    const kept = await waitFor(() => {
      const current = api.job(job.metadata.name);
      return current?.status?.conditions?.some((c: any) => c.type === 'Failed' && c.reason === 'DeadlineExceeded') ? current : undefined;
    });
    expect(kept.spec).toMatchObject({ activeDeadlineSeconds: 1, parallelism: 0, suspend: false, backoffLimit: 0, ttlSecondsAfterFinished: 86400 });
    expect(api.pods().filter((p) => p.metadata.labels['job-name'] === job.metadata.name)).toEqual([]);
  });

  it('un-suspends a suspended Job with zero parallelism, so no pod starts and the deadline applies', async () => {
    const job = insertJob({ suspend: true });
    expect(await finalize(job, 'termination-required')).toBe('expired');
    expect(api.job(job.metadata.name)!.spec).toMatchObject({ suspend: false, parallelism: 0, activeDeadlineSeconds: 1 });
  });

  it('leaves a Job the watch saw finished without a call', async () => {
    const job = insertJob();
    const observed = structuredClone(job);
    observed.status = { conditions: [{ type: 'Failed', status: 'True' }] };
    const before = api.requests.length;
    expect(await finalize(job, 'termination-required', observed)).toBe('finished');
    expect(api.requests.length).toBe(before);
  });

  it('takes a Job that is gone as done', async () => {
    const job = insertJob();
    api.touchJob(job.metadata.name);
    const observed = structuredClone(api.job(job.metadata.name)!);
    await client.deleteJob(job.metadata.name, 'Background');
    expect(await finalize(job, 'termination-required', observed)).toBe('gone');
    expect(patchesOf(job.metadata.name)).toEqual([]);
  });
});

describe('when the Job changed between the read and the patch (409 Conflict)', () => {
  it('a bumped resourceVersion: re-read, same uid, patched again (2 PATCHes)', async () => {
    const job = insertJob();
    const seen = job.metadata.resourceVersion as string;
    api.beforeNextPatch = (name) => api.touchJob(name);
    expect(await finalize(job, 'termination-required')).toBe('expired');
    const patches = patchesOf(job.metadata.name);
    expect(patches.map((p) => p.status)).toEqual([409, 200]);
    expect(patches.map((p) => p.body)).toEqual([expiryBody(seen, job.metadata.uid), expiryBody(String(Number(seen) + 1), job.metadata.uid)]);
    expect(sleeps).toEqual([1_000]);
  });

  it('a replaced Job (new uid): refused, the other Job never touched (1 PATCH)', async () => {
    const job = insertJob();
    const observed = structuredClone(job);
    api.beforeNextPatch = (name) => api.replaceJob(name);
    const error = await finalize(job, 'termination-required', observed).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(JobReplacedError);
    expect((error as Error).message).toBe(`job ${job.metadata.name} was replaced; refusing to expire another execution`);
    expect(patchesOf(job.metadata.name).map((p) => p.status)).toEqual([409]);
    expect(api.job(job.metadata.name)!.spec).not.toHaveProperty('parallelism', 0);
  });

  it('the Job became Complete: kept, not patched again (1 PATCH)', async () => {
    const job = insertJob();
    api.beforeNextPatch = (name) => api.setJobCondition(name, 'Complete');
    expect(await finalize(job, 'termination-required')).toBe('finished');
    expect(patchesOf(job.metadata.name).map((p) => p.status)).toEqual([409]);
  });
});

describe('bounded retries', () => {
  it('an API server answering 503 to every PATCH: six attempts over about half a minute, then the error', async () => {
    const job = insertJob();
    api.fail('PATCH', new RegExp(`/jobs/${job.metadata.name}$`), 503, 100);
    const error = await finalize(job, 'termination-required').then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/failed to patch Job .*: injected 503/);
    expect(api.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith(job.metadata.name))).toHaveLength(6);
    expect(sleeps).toEqual([1_000, 2_000, 4_000, 8_000, 10_000]);
  });

  it('a refusal that retrying cannot fix (403) is given up at once', async () => {
    const job = insertJob();
    api.fail('PATCH', new RegExp(`/jobs/${job.metadata.name}$`), 403, 100);
    await expect(finalize(job, 'termination-required')).rejects.toThrow(/injected 403/);
    expect(sleeps).toEqual([]);
  });

  it('a failing read falls back to the identity the watch saw, and a stale resourceVersion is retried', async () => {
    const job = insertJob();
    const observed = structuredClone(job);
    api.touchJob(job.metadata.name);
    api.fail('GET', new RegExp(`/jobs/${job.metadata.name}$`), 500, 1);
    expect(await finalize(job, 'termination-required', observed)).toBe('expired');
    expect(logs.map((l) => l.msg)).toContainEqual(
      expect.stringMatching(new RegExp(`^Cannot refresh abandoned Job ${job.metadata.name}; attempting expiration using its last observed identity`)),
    );
    expect(patchesOf(job.metadata.name).map((p) => p.status)).toEqual([409, 200]);
  });

  it('a Job the watch never saw is expired only when it carries the execution hash', async () => {
    const ours = insertJob();
    expect(
      await finalizeFailedJob({ client, log, name: ours.metadata.name, observed: undefined, executionHash: HASH, disposition: 'termination-required' }),
    ).toBe('expired');
    const theirs = insertJob();
    await expect(
      finalizeFailedJob({ client, log, name: theirs.metadata.name, observed: undefined, executionHash: 'another-hash', disposition: 'termination-required' }),
    ).rejects.toBeInstanceOf(JobReplacedError);
    expect(patchesOf(theirs.metadata.name)).toEqual([]);
  });
});

async function waitFor<T>(check: () => T | undefined): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('condition not reached');
}
