// The Helm chart against the real Kubernetes cluster that test/infra/kube/up.sh
// starts (found through the env file it writes, $OZ_TEST_CACHE/kube/env/env):
// rendered manifests pass server-side dry-run; `helm install` runs the worker
// and a task completes as a Job; `helm upgrade` rolls the worker without two
// connections for one worker id at any moment; a release shaped like the Go
// chart's is upgraded in place with the Go values file.
//
// That cluster has no kube-proxy: like the k8s/ install suite, the worker pod
// uses host networking (added by a post-renderer, not by the chart) and reaches
// the API server and the dispatch server on loopback.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { taskJobName } from '../../src/backends/kubernetes/names.js';
import { lockCluster } from '../support/cluster-lock.js';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { freePort } from '../support/metrics.js';
import { ENV_FILE, type RealCluster } from '../support/real-kube.js';
import { CACHE, CHART, FIXTURES, findHelmCluster, parseManifests, run, splitImage, testClusterSettings, writeHostNetworkPostRenderer } from './helm-support.js';

const API_KEY = 'wk-helm-cluster-test';

const found = await findHelmCluster();
if ('why' in found) console.warn(`real Helm cluster suite skipped: ${found.why}`);
const helm = 'helm' in found ? found.helm : '';
const cluster: Partial<RealCluster> = 'cluster' in found ? found.cluster : {};
const missingImages = Object.entries({ OZ_KUBE_WORKER_IMAGE: cluster.workerImage, OZ_KUBE_AGENT_IMAGE: cluster.agentImage })
  .filter(([, image]) => !image)
  .map(([name]) => name);
if (helm && missingImages.length) console.warn(`real Helm install tests skipped: ${ENV_FILE} names no ${missingImages.join(', ')}`);

const clusterEnv = () => ({ KUBECONFIG: cluster.kubeconfig! });
const kube = (args: string[], input?: string) =>
  run(cluster.kubectlPath || 'kubectl', args, { env: clusterEnv(), ...(input === undefined ? {} : { input }), timeoutMs: 180_000 });
const helmRun = (args: string[]) => run(helm, args, { env: clusterEnv(), timeoutMs: 300_000 });
const suffix = randomBytes(3).toString('hex');
const namespaces: string[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'oz-helm-cluster-'));

async function namespace(name: string): Promise<string> {
  const result = await kube(['create', 'namespace', name]);
  expect(result.code, result.stderr).toBe(0);
  namespaces.push(name);
  return name;
}

// The Kubernetes suites kill the API server mid-test: this file holds the cluster lock they share while it runs.
let unlock: (() => void) | undefined;
beforeAll(async () => {
  if (helm) unlock = await lockCluster(CACHE);
}, 16 * 60_000);
afterAll(async () => {
  try {
    if (helm) for (const name of namespaces) await kube(['delete', 'namespace', name, '--wait=false']);
    rmSync(scratch, { recursive: true, force: true });
  } finally {
    unlock?.();
  }
});

describe.skipIf(!helm)('Helm chart on a real cluster', () => {
  it('renders manifests the API server accepts (kubectl apply --dry-run=server)', async () => {
    const release = await namespace(`oz-helm-dry-${suffix}`);
    const tasks = await namespace(`oz-helm-dry-${suffix}-tasks`);
    const podMonitorCrd = (await kube(['get', 'crd', 'podmonitors.monitoring.coreos.com'])).code === 0;
    for (const values of [
      ['-f', join(FIXTURES, 'go-chart-defaults.yaml'), '--set', 'worker.workerId=dry-run', '--set', 'image.repository=registry.example.com/oz-worker'],
      ['-f', join(FIXTURES, 'go-chart-every-key.yaml'), '--set', `kubernetesBackend.namespace=${tasks}`, '--set', `metrics.podMonitor.create=${podMonitorCrd}`],
      [
        '-f',
        join(FIXTURES, 'go-chart-latest-every-key.yaml'),
        '--set',
        `kubernetesBackend.namespace=${tasks}`,
        '--set',
        `metrics.podMonitor.create=${podMonitorCrd}`,
      ],
      ['-f', join(FIXTURES, 'go-chart-command.yaml')],
    ]) {
      const rendered = await helmRun(['template', 'dry', CHART, '--namespace', release, ...values]);
      expect(rendered.code, rendered.stderr).toBe(0);
      expect(parseManifests(rendered.stdout).length).toBeGreaterThanOrEqual(3);
      const applied = await kube(['apply', '--dry-run=server', '-f', '-'], rendered.stdout);
      expect(applied.code, applied.stderr).toBe(0);
    }
  }, 180_000);

  describe.skipIf(missingImages.length > 0)('helm install and upgrade', () => {
    let server: FakeDispatchServer;
    let relay: Relay;
    let postRenderer: string;
    let ns: string;
    const release = `oz-helm-${suffix}`;

    beforeAll(async () => {
      server = await FakeDispatchServer.start({ apiKey: API_KEY });
      relay = await Relay.start(Number(new URL(server.url).port));
      postRenderer = writeHostNetworkPostRenderer(join(scratch, 'host-network.sh'));
      ns = await namespace(`oz-helm-${suffix}`);
    }, 60_000);
    afterAll(async () => {
      await helmRun(['uninstall', release, '--namespace', ns, '--wait']);
      await relay?.close();
      await server?.close();
    });

    const [repository, tag] = splitImage(cluster.workerImage ?? '');
    /** Test-only settings: the imported images, loopback addresses, a free health port (host networking). */
    const values = (namespace: string, workerId: string, healthPort: number) => [
      '--namespace',
      namespace,
      ...testClusterSettings(cluster as RealCluster, { postRenderer, healthPort }),
      '--set',
      `worker.workerId=${workerId}`,
      '--set',
      `image.repository=${repository}`,
      '--set',
      `image.tag=${tag}`,
      '--set',
      'warp.apiKeySecret.create=true',
      '--set',
      `warp.apiKeySecret.value=${API_KEY}`,
      '--set',
      `warp.webSocketURL=ws://${relay.address}/api/v1/selfhosted/worker/ws`,
      '--wait',
      '--timeout',
      '4m',
    ];

    it('helm install runs the worker, and a task completes as a Job', async () => {
      const installed = await helmRun(['install', release, CHART, ...values(ns, 'helm-e2e', await freePort())]);
      expect(installed.code, installed.stderr).toBe(0);
      await server.waitForConnection(1, 60_000);
      server.assign(assignment('helm-1'));
      await server.waitForMessage('task_completed', 'helm-1', 240_000);
      expect(server.messagesFor('helm-1').map((m) => m.type)).not.toContain('task_failed');
      // The task ran as a Job of the worker's (succeeded Jobs are deleted at once; their events stay).
      // The job controller records its events asynchronously: wait for them.
      const job = taskJobName('helm-1', 'exec-helm-1');
      const wanted = [`${job} SuccessfulCreate`, `${job} Completed`];
      const jobEvents = async () =>
        (
          await kube([
            'get',
            'events',
            '-n',
            ns,
            '--field-selector',
            'involvedObject.kind=Job',
            '-o',
            'jsonpath={range .items[*]}{.involvedObject.name} {.reason}{"\\n"}{end}',
          ])
        ).stdout.split('\n');
      let seen = await jobEvents();
      for (const deadline = Date.now() + 90_000; !wanted.every((line) => seen.includes(line)) && Date.now() < deadline; seen = await jobEvents()) {
        await new Promise((resolve) => setTimeout(resolve, 2_000));
      }
      expect(seen).toEqual(expect.arrayContaining(wanted));
    }, 420_000);

    it('helm upgrade with a changed value rolls the worker, never two connected at once', async () => {
      const podNames = async () =>
        (await kube(['get', 'pods', '-n', ns, '-l', `app.kubernetes.io/instance=${release}`, '-o', 'jsonpath={.items[*].metadata.name}'])).stdout.trim();
      const before = await podNames();
      relay.resetPeak();
      const upgraded = await helmRun(['upgrade', release, CHART, ...values(ns, 'helm-e2e', await freePort()), '--set', 'worker.logLevel=debug']);
      expect(upgraded.code, upgraded.stderr).toBe(0);
      const args = await kube([
        'get',
        'deploy',
        '-n',
        ns,
        '-l',
        `app.kubernetes.io/instance=${release}`,
        '-o',
        'jsonpath={.items[0].spec.template.spec.containers[0].args}',
      ]);
      expect(args.stdout).toContain('--log-level=debug');
      expect(await podNames()).not.toBe(before);
      await server.until(() => relay.open === 1, 60_000, 'the new worker to connect');
      expect(relay.peak).toBe(1);
    }, 360_000);

    it("upgrades a release shaped like the Go chart's in place, with the Go chart's values file", async () => {
      const goNs = await namespace(`oz-helm-go-${suffix}`);
      const goChart = writeGoLikeChart(join(scratch, 'go-like'), cluster.agentImage!);
      const installed = await helmRun(['install', 'oz-agent-worker', goChart, '--namespace', goNs, '--wait', '--timeout', '3m']);
      expect(installed.code, installed.stderr).toBe(0);
      const upgraded = await helmRun([
        'upgrade',
        'oz-agent-worker',
        CHART,
        '-f',
        join(FIXTURES, 'go-chart-defaults.yaml'),
        '--set',
        'nameOverride=oz-agent-worker',
        ...values(goNs, 'helm-go-upgrade', await freePort()),
      ]);
      expect(upgraded.code, upgraded.stderr).toBe(0);
      const strategy = await kube(['get', 'deploy', 'oz-agent-worker', '-n', goNs, '-o', 'jsonpath={.spec.strategy}']);
      expect(JSON.parse(strategy.stdout)).toEqual({ type: 'Recreate' });
      await server.until(() => server.handshakes.some((h) => h.workerId === 'helm-go-upgrade'), 60_000, 'the upgraded worker to connect');
      await helmRun(['uninstall', 'oz-agent-worker', '--namespace', goNs, '--wait']);
    }, 360_000);
  });
});

describe.skipIf(!helm || missingImages.length > 0)('Helm chart with the command backend on a real cluster', () => {
  let server: FakeDispatchServer;
  let relay: Relay;
  let ns: string;
  const release = `oz-helm-cmd-${suffix}`;

  beforeAll(async () => {
    server = await FakeDispatchServer.start({ apiKey: API_KEY });
    relay = await Relay.start(Number(new URL(server.url).port));
    ns = await namespace(`oz-helm-cmd-${suffix}`);
  }, 60_000);
  afterAll(async () => {
    if (ns) await helmRun(['uninstall', release, '--namespace', ns, '--wait']);
    await relay?.close();
    await server?.close();
  });

  it('runs the worker with a dispatch script mounted from a ConfigMap, hands a task to it and cancels it there, with no Role', async () => {
    // The operator's scripts and credential, made outside the chart as the values' comments say.
    const scripts = {
      'dispatch.sh': [
        '# Stands in for a hand-off to a remote runtime: reads the payload and says what it got.',
        'payload=$(cat)',
        'run=$(printf %s "$payload" | node -e \'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s).run_id))\')',
        'echo "handed off run $run (OZ_RUN_ID=$OZ_RUN_ID, backend $OZ_WORKER_BACKEND) to $RUNTIME_URL, auth header ${OZ_DISPATCH_AUTH_HEADER:+present}"',
        '',
      ].join('\n'),
      'cancel.sh': 'echo "cancelled run $OZ_RUN_ID at $RUNTIME_URL"\n',
    };
    const configMap = await kube(
      ['apply', '-n', ns, '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'oz-dispatch' }, data: scripts }),
    );
    expect(configMap.code, configMap.stderr).toBe(0);
    const secret = await kube([
      'create',
      'secret',
      'generic',
      'oz-dispatch-credentials',
      '-n',
      ns,
      '--from-literal=OZ_DISPATCH_AUTH_HEADER=Bearer test-dispatch',
    ]);
    expect(secret.code, secret.stderr).toBe(0);

    const [repository, tag] = splitImage(cluster.workerImage ?? '');
    const valuesFile = join(scratch, 'command-values.yaml');
    writeFileSync(
      valuesFile,
      [
        'backend:',
        '  type: command',
        'commandBackend:',
        '  dispatchCommand: sh /opt/oz/dispatch.sh',
        '  cancelCommand: sh /opt/oz/cancel.sh',
        '  dispatchTimeout: 30s',
        '  environment:',
        '    - name: RUNTIME_URL',
        '      value: https://runtime.example.test/dispatch',
        '    - name: OZ_DISPATCH_AUTH_HEADER',
        'image:',
        `  repository: ${repository}`,
        `  tag: "${tag}"`,
        'warp:',
        '  apiKeySecret:',
        '    create: true',
        `    value: ${API_KEY}`,
        `  webSocketURL: ws://${relay.address}/api/v1/selfhosted/worker/ws`,
        'worker:',
        '  workerId: helm-command',
        `  healthPort: ${await freePort()}`,
        '  extraEnv:',
        '    - name: OZ_DISPATCH_AUTH_HEADER',
        '      valueFrom:',
        '        secretKeyRef: {name: oz-dispatch-credentials, key: OZ_DISPATCH_AUTH_HEADER}',
        '  extraVolumes:',
        '    - name: dispatch-scripts',
        '      configMap: {name: oz-dispatch}',
        '  extraVolumeMounts:',
        '    - name: dispatch-scripts',
        '      mountPath: /opt/oz',
        '      readOnly: true',
        '',
      ].join('\n'),
    );
    const postRenderer = writeHostNetworkPostRenderer(join(scratch, 'host-network-command.sh'));
    const installed = await helmRun([
      'install',
      release,
      CHART,
      '--namespace',
      ns,
      '-f',
      valuesFile,
      '--post-renderer',
      postRenderer,
      '--wait',
      '--timeout',
      '4m',
    ]);
    expect(installed.code, installed.stderr).toBe(0);
    const roles = await kube(['get', 'roles,rolebindings', '-n', ns, '-o', 'name']);
    expect(roles.stdout.trim()).toBe('');
    await server.waitForConnection(1, 60_000);
    expect(server.handshakes.map((h) => h.workerId)).toContain('helm-command');

    const workerLog = async () => (await kube(['logs', '-n', ns, `deploy/${release}-oz-worker`])).stdout;
    const logLine = async (pattern: RegExp) => {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 1_000))) {
        const line = (await workerLog()).split('\n').find((l) => pattern.test(l));
        if (line) return JSON.parse(line) as { msg: string; command?: string };
      }
      throw new Error(`no worker log line matching ${pattern}:\n${(await workerLog()).slice(-3000)}`);
    };

    server.assign(assignment('helm-cmd-1'));
    await server.waitForMessage('task_claimed', 'helm-cmd-1', 60_000);
    const handedOff = await logLine(/handed off run helm-cmd-1/);
    expect(handedOff).toMatchObject({
      command: 'dispatch',
      msg: 'handed off run helm-cmd-1 (OZ_RUN_ID=helm-cmd-1, backend command) to https://runtime.example.test/dispatch, auth header present',
    });
    await logLine(/Task helm-cmd-1 dispatched successfully/);
    // Handed off: the remote runtime reports, not the worker.
    expect(server.messagesFor('helm-cmd-1').map((m) => m.type)).toEqual(['task_claimed']);

    server.cancel('helm-cmd-1');
    const cancelled = await logLine(/cancelled run helm-cmd-1/);
    expect(cancelled.msg).toBe('cancelled run helm-cmd-1 at https://runtime.example.test/dispatch');
  }, 420_000);
});

/** A chart shaped like the Go worker's (same object names and selector, RollingUpdate by default) running a placeholder. */
function writeGoLikeChart(dir: string, image: string): string {
  mkdirSync(join(dir, 'templates'), { recursive: true });
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: oz-agent-worker\nversion: 0.1.0\n');
  writeFileSync(
    join(dir, 'templates', 'objects.yaml'),
    `apiVersion: v1
kind: ServiceAccount
metadata:
  name: oz-agent-worker
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: oz-agent-worker-config
data:
  config.yaml: "worker_id: placeholder"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: oz-agent-worker
spec:
  replicas: 1
  selector:
    matchLabels: &labels
      app.kubernetes.io/name: oz-agent-worker
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels: *labels
    spec:
      serviceAccountName: oz-agent-worker
      terminationGracePeriodSeconds: 1
      containers:
        - name: oz-agent-worker
          image: ${image}
          command: ["sleep", "3600"]
`,
  );
  return dir;
}

/** Forwards the worker's connections to the dispatch server, counting how many are open at once. */
class Relay {
  open = 0;
  peak = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(
    private readonly server: Server,
    readonly address: string,
  ) {}

  static async start(targetPort: number): Promise<Relay> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
    const relay = new Relay(server, `127.0.0.1:${(server.address() as { port: number }).port}`);
    server.on('connection', (inbound) => relay.forward(inbound, targetPort));
    return relay;
  }

  private forward(inbound: Socket, targetPort: number): void {
    const outbound = connect(targetPort, '127.0.0.1');
    this.sockets.add(inbound).add(outbound);
    this.open += 1;
    this.peak = Math.max(this.peak, this.open);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.open -= 1;
      for (const socket of [inbound, outbound]) {
        socket.destroy();
        this.sockets.delete(socket);
      }
    };
    for (const socket of [inbound, outbound]) socket.on('error', close).on('close', close);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  }

  resetPeak(): void {
    this.peak = this.open;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
