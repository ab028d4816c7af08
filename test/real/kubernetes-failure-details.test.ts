// A task OOM-killed by the real kubelet, end to end: the worker (Kubernetes
// backend) connected to the real local dispatch server, the task submitted and
// watched with `oz-worker task`, its task_failed carrying failure_details as the
// kubelet reported the kill (the task container terminated OOMKilled, exit 137,
// the pod's conditions) and nothing the allow-list keeps out. Skips, saying why,
// when no cluster is up (test/infra/kube/up.sh).
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startLocalServer } from '../support/local-server.js';
import { clusterFor, Kube, kubeWorkerConfigFile, oneTestAtATimeOnTheCluster, unique, until, type RealCluster } from '../support/real-kube.js';
import { startWorker } from '../support/worker-process.js';

const cluster = await clusterFor('real Kubernetes failure-details suite');

describe.skipIf(!cluster)('failure details from a real cluster', () => {
  const c = cluster as RealCluster;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  oneTestAtATimeOnTheCluster(cleanups);

  it("an OOM kill reaches the local server with the kubelet's account of it, and task watch shows it", { timeout: 300_000 }, async () => {
    const kube = new Kube(c);
    const namespace = await kube.testNamespace('oz-details', cleanups);

    const local = await startLocalServer();
    cleanups.push(() => local.close());
    const team = await local.createTeam('platform', { defaultAgent: { model_id: 'claude-test' } });

    const configPath = kubeWorkerConfigFile(c, { workerId: unique('details-worker'), namespace }, cleanups);
    const worker = startWorker({
      // The stand-in agent allocates this much, over the container's limit.
      args: ['--config-file', configPath, '--web-socket-url', local.server.webSocketUrl, '-e', 'FAKE_OZ_ALLOC_MB=600', '-e', 'FAKE_OZ_SLEEP_MS=30000'],
      env: { WARP_API_KEY: team.key },
    });
    cleanups.push(() => worker.stop());
    await worker.waitForLog((l) => l.msg === 'Connected to dispatch server', 60_000);

    const client = local.as(team.key);
    const task = await client.submitTask({ prompt: 'use more memory than the pod may' });
    const failed = await worker.withOutput(
      until(
        async () => {
          const current = await client.task(task.id);
          return current.state === 'failed' ? current : undefined;
        },
        180_000,
        'the task to fail',
      ),
    );
    expect(failed).toMatchObject({ failure_reason: 'container_oom', exit_code: 137 });

    const details = failed.failure_details?.kubernetes;
    const [pod] = await kube.podsOfJob(namespace, (await kube.jobs(namespace))[0]!.metadata!.name!);
    expect(details).toMatchObject({
      schema_version: 1,
      observation_source: 'pod_watch',
      job: { name: expect.stringMatching(/^oz-task-/), uid: expect.any(String) },
      pod: { name: pod!.metadata!.name, uid: pod!.metadata!.uid },
      container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'OOMKilled', raw_exit_code: 137, normalized_exit_code: 137 },
    });
    // The kubelet's own times of the container's run, and the pod's conditions as it set them.
    const container = details!.container!;
    expect(Date.parse(container.finished_at!)).toBeGreaterThanOrEqual(Date.parse(container.started_at!));
    const conditions = new Map((details!.pod!.conditions ?? []).map((condition) => [condition.type, condition]));
    expect(conditions.get('PodScheduled')).toMatchObject({ status: 'True', last_transition_time: expect.any(String) });
    expect(conditions.get('ContainersReady')).toMatchObject({ status: 'False' });
    const text = JSON.stringify(failed.failure_details);
    for (const kept of [namespace, c.nodeName, c.agentImage, 'containerd://', 'message']) expect(text).not.toContain(kept);

    // A failed task's watch exits non-zero; its lines are what is asserted.
    const { stdout } = await runCli(['task', 'watch', task.id, '--server', local.server.httpUrl, '--api-key', team.key]);
    expect(stdout).toMatch(/task failed \(exit code 137\)/);
    expect(stdout).toContain('  kubernetes, seen by pod_watch at ');
    expect(stdout).toContain(`  pod ${pod!.metadata!.name}: `);
    expect(stdout).toContain('  container task (regular): terminated OOMKilled, exit 137 (signal 9)');
  });
});
