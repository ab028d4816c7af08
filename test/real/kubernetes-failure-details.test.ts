// A task OOM-killed by the real kubelet, end to end: the worker (Kubernetes
// backend) connected to the real local dispatch server, the task submitted and
// watched with `oz-worker task`, its task_failed carrying failure_details as the
// kubelet reported the kill (the task container terminated OOMKilled, exit 137,
// the pod's conditions) and nothing the allow-list keeps out. Skips, saying why,
// when no cluster is up (test/infra/kube/up.sh).
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startLocalServer } from '../support/local-server.js';
import { findCluster, Kube, oneTestAtATimeOnTheCluster, until, type RealCluster } from '../support/real-kube.js';
import { BIN, REPO_ROOT, startWorker, tempDir } from '../support/worker-process.js';

const found = await findCluster();
const cluster = 'skip' in found ? undefined : found;
if ('skip' in found) console.log(`real Kubernetes failure-details suite skipped: ${found.skip}`);

const run = promisify(execFile);

describe.skipIf(!cluster)('failure details from a real cluster', () => {
  const c = cluster as RealCluster;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  oneTestAtATimeOnTheCluster(cleanups);

  it("an OOM kill reaches the local server with the kubelet's account of it, and task watch shows it", { timeout: 300_000 }, async () => {
    const kube = new Kube(c);
    const suffix = `${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
    const namespace = `oz-details-${suffix}`;
    await kube.createNamespace(namespace);
    cleanups.push(() => kube.deleteNamespace(namespace));

    const local = await startLocalServer();
    cleanups.push(() => local.close());
    const team = await local.createTeam('platform', { defaultAgent: { model_id: 'claude-test' } });

    const dir = tempDir('real-details');
    cleanups.push(dir.cleanup);
    const configPath = join(dir.path, 'config.yaml');
    writeFileSync(
      configPath,
      [
        `worker_id: details-worker-${suffix}`,
        'backend:',
        '  kubernetes:',
        `    namespace: ${namespace}`,
        `    kubeconfig: ${c.kubeconfig}`,
        `    default_image: ${c.agentImage}`,
        '    image_pull_policy: IfNotPresent',
        '    preflight_timeout: 0s',
        '    pod_template:',
        '      terminationGracePeriodSeconds: 1',
        '      containers:',
        '        - name: task',
        '          resources: {limits: {memory: 160Mi}}',
      ].join('\n'),
    );
    const worker = startWorker({
      // The stand-in agent allocates this much, over the container's limit.
      args: ['--config-file', configPath, '--web-socket-url', local.server.webSocketUrl, '-e', 'FAKE_OZ_ALLOC_MB=600', '-e', 'FAKE_OZ_SLEEP_MS=30000'],
      env: { WARP_API_KEY: team.key },
    });
    cleanups.push(() => worker.stop());
    await worker
      .waitForLog((l) => l.msg === 'Connected to dispatch server', 60_000)
      .catch((error: Error) => {
        throw new Error(`${error.message}\n${worker.output.slice(-3000)}`);
      });

    const client = local.as(team.key);
    const task = await client.submitTask({ prompt: 'use more memory than the pod may' });
    const failed = await until(
      async () => {
        const current = await client.task(task.id);
        return current.state === 'failed' ? current : undefined;
      },
      180_000,
      'the task to fail',
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${worker.output.slice(-4000)}`);
    });
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

    const { stdout } = await run(process.execPath, [BIN, 'task', 'watch', task.id, '--server', local.server.httpUrl, '--api-key', team.key], {
      cwd: REPO_ROOT,
    }).catch((error: { stdout?: string; code?: number }) => ({ stdout: error.stdout ?? '' }));
    expect(stdout).toMatch(/task failed \(exit code 137\)/);
    expect(stdout).toContain('  kubernetes, seen by pod_watch at ');
    expect(stdout).toContain(`  pod ${pod!.metadata!.name}: `);
    expect(stdout).toContain('  container task (regular): terminated OOMKilled, exit 137 (signal 9)');
  });
});
