// A task pod preempted by the real kube-scheduler for a pod of higher priority: the worker
// reports failure_reason pod_preempted (not the container_exit its SIGTERM would read as) and
// counts it under that reason in oz_worker_task_failures_total. Skips, saying why, when no
// cluster is up (test/infra/kube/up.sh).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY } from '../support/direct-worker.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { freePort, samples } from '../support/metrics.js';
import { clusterFor, Kube, kubeWorkerConfigFile, oneTestAtATimeOnTheCluster, unique, until, type RealCluster } from '../support/real-kube.js';
import { startWorker } from '../support/worker-process.js';

const cluster = await clusterFor('real Kubernetes preemption suite');

/** Kubernetes CPU quantity in millicores ("2", "1500m"). */
const millicores = (quantity: string | undefined): number =>
  quantity === undefined ? 0 : quantity.endsWith('m') ? Number(quantity.slice(0, -1)) : Math.round(Number(quantity) * 1000);

describe.skipIf(!cluster)('preemption on a real cluster', () => {
  const c = cluster as RealCluster;
  let kube: Kube;
  let server: FakeDispatchServer;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];

  beforeAll(async () => {
    kube = new Kube(c);
    server = await FakeDispatchServer.start({ apiKey: API_KEY });
  });
  afterAll(async () => {
    await server?.close();
  });
  oneTestAtATimeOnTheCluster(cleanups);

  it('reports a task whose pod the scheduler preempted as pod_preempted', { timeout: 300_000 }, async () => {
    const namespace = await kube.testNamespace('oz-preempt', cleanups);
    const priorityClass = unique('oz-test-preemptor');
    await kube.kubectl(['create', 'priorityclass', priorityClass, '--value=1000000', '--description=oz-worker preemption test']);
    cleanups.push(() => kube.kubectl(['delete', 'priorityclass', priorityClass, '--ignore-not-found']).catch(() => undefined));

    // The task pod takes 60 % of the CPU no other pod has asked for; the preemptor wants as much
    // again, so the scheduler can place it only by evicting the task pod (the latest started pod
    // of the lowest priority is the one it gives up first).
    const node = await kube.core.readNode({ name: c.nodeName });
    const pods = (await kube.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${c.nodeName}` })).items.filter(
      (pod) => pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed',
    );
    const requested = pods
      .flatMap((pod) => [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])])
      .reduce((sum, container) => sum + millicores(container.resources?.requests?.cpu), 0);
    const share = Math.floor((millicores(node.status?.allocatable?.cpu) - requested) * 0.6);
    expect(share, 'free CPU on the test node').toBeGreaterThan(100);

    const configPath = kubeWorkerConfigFile(
      c,
      { workerId: unique('preempt-worker'), namespace, taskResources: `{requests: {cpu: ${share}m}, limits: {memory: 160Mi}}` },
      cleanups,
    );
    const metricsPort = await freePort();
    const before = server.connectionCount;
    const worker = startWorker({
      args: ['--config-file', configPath, '--web-socket-url', server.url],
      env: {
        WARP_API_KEY: API_KEY,
        OTEL_METRICS_EXPORTER: 'prometheus',
        OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
        OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      },
    });
    cleanups.push(() => worker.stop());
    await worker.withOutput(until(() => server.connectionCount > before, 60_000, 'the worker to connect'));

    const id = unique('preempted');
    server.assign(assignment(id, { execution_id: `exec-${id}`, env_vars: { FAKE_OZ_SLEEP_MS: '180000' } }));
    await until(
      async () => (await kube.core.listNamespacedPod({ namespace })).items.find((pod) => pod.status?.phase === 'Running' && pod.metadata?.labels?.['job-name']),
      120_000,
      'the task pod to run',
    );
    await kube.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name: 'preemptor' },
        spec: {
          priorityClassName: priorityClass,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'preemptor',
              image: c.agentImage,
              imagePullPolicy: 'IfNotPresent',
              env: [{ name: 'FAKE_OZ_SLEEP_MS', value: '180000' }],
              resources: { requests: { cpu: `${share}m` }, limits: { memory: '160Mi' } },
            },
          ],
        },
      },
    });

    const failed = await server.waitForMessage('task_failed', id, 120_000);
    expect(failed.data.failure_reason).toBe('pod_preempted');
    expect(failed.data.message).toMatch(/was preempted by the scheduler: default-scheduler: preempting to accommodate a higher priority pod/);
    const counted = await until(async () => samples(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()), 10_000, 'a scrape');
    expect(counted.get('oz_worker_task_failures_total{phase="backend",reason="pod_preempted"}')).toBe(1);
    expect(counted.get('oz_worker_task_failures_total{phase="backend",reason="container_exit"}')).toBe(0);
  });
});
