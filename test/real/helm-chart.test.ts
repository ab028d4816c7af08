// The Helm chart through the real helm CLI (built by test/infra/helm/build.sh):
// lint, render with the Go chart's default values and with every key set, and
// hand the rendered config and flags to the real worker binary.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REQUIRED_ACCESS } from '../../src/backends/kubernetes/startup-checks.js';
import { CACHE, CHART, FIXTURES, findHelm, only, parseManifests, readEnvFile, REPO_ROOT, run, type Manifest } from './helm-support.js';

const found = findHelm();
if ('why' in found) console.warn(`real Helm suite skipped: ${found.why}`);
const helm = 'helm' in found ? found.helm : '';

const BIN = join(REPO_ROOT, 'bin/oz-worker.js');
const OUR_IMAGE = ['--set', 'image.repository=registry.example.com/oz-worker'];
const GO_DEFAULTS = join(FIXTURES, 'go-chart-defaults.yaml');
const EVERY_KEY = join(FIXTURES, 'go-chart-every-key.yaml');
const LATEST_EVERY_KEY = join(FIXTURES, 'go-chart-latest-every-key.yaml');
const GO_COMMAND = join(FIXTURES, 'go-chart-command.yaml');
const ASSIGNMENT = join(REPO_ROOT, 'test/fixtures/assignments/team.json');

const scratch = mkdtempSync(join(tmpdir(), 'oz-helm-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function template(args: string[], release = 'oz-agent-worker', namespace = 'agents'): Promise<Manifest[]> {
  const result = await run(helm, ['template', release, CHART, '--namespace', namespace, ...args]);
  if (result.code !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

async function templateFails(args: string[]): Promise<string> {
  const result = await run(helm, ['template', 'r', CHART, ...args]);
  expect(result.code, result.stdout).not.toBe(0);
  return result.stderr;
}

const container = (deployment: Manifest) => deployment.spec.template.spec.containers[0];
const configOf = (manifests: Manifest[]) => parse(only(manifests, 'ConfigMap').data['config.yaml'] as string);
const envOf = (deployment: Manifest): Record<string, unknown> =>
  Object.fromEntries((container(deployment).env as { name: string; value?: string; valueFrom?: unknown }[]).map((e) => [e.name, e.value ?? e.valueFrom]));

/** `oz-worker plan` with the rendered config file and the Deployment's own flags: what the worker would run. */
async function planWith(manifests: Manifest[], name: string): Promise<any> {
  const configPath = join(scratch, `${name}.yaml`);
  writeFileSync(configPath, only(manifests, 'ConfigMap').data['config.yaml'] as string);
  const args = (container(only(manifests, 'Deployment')).args as string[]).map((arg) =>
    arg.startsWith('--config-file=') ? `--config-file=${configPath}` : arg,
  );
  const result = await run(process.execPath, [BIN, 'plan', ...args, '--json', ASSIGNMENT], { env: { WARP_API_KEY: 'wk-test', OZ_WORKER_STATE_DIR: scratch } });
  expect(result.code, `oz-worker plan refused the rendered config or flags:\n${result.stdout}${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout);
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = { Deployment, Role, RoleBinding, ConfigMap, Secret, Service, ServiceAccount };
function expectValidKubernetes(manifests: Manifest[]): void {
  for (const manifest of manifests) {
    const Model = MODELS[manifest.kind];
    if (!Model) continue; // PodMonitor: a CRD, checked against a real API server in helm-cluster
    expect(() => new Model(manifest as never).validate(), `${manifest.kind}/${manifest.metadata.name}`).not.toThrow();
  }
}

describe.skipIf(!helm)('Helm chart k8s/chart/oz-worker', () => {
  it('passes helm lint --strict', async () => {
    const result = await run(helm, ['lint', '--strict', CHART, '--set', 'worker.workerId=ci-worker']);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    for (const values of [EVERY_KEY, LATEST_EVERY_KEY, GO_COMMAND]) {
      const withGoValues = await run(helm, ['lint', '--strict', CHART, '-f', values]);
      expect(withGoValues.code, `${values}: ${withGoValues.stdout}${withGoValues.stderr}`).toBe(0);
    }
  });

  describe("with the Go chart's default values file", () => {
    const render = () => template(['-f', GO_DEFAULTS, '--set', 'worker.workerId=ci-worker', '--set', 'image.tag=ci', ...OUR_IMAGE]);

    it('renders what the Go chart renders for the worker config, and the worker accepts it', async () => {
      const manifests = await render();
      expect(configOf(manifests)).toEqual({
        worker_id: 'ci-worker',
        cleanup: true,
        max_concurrent_tasks: 0,
        backend: {
          kubernetes: {
            namespace: 'agents',
            image_pull_policy: 'IfNotPresent',
            use_image_volumes: false,
            unschedulable_timeout: '30s',
            active_deadline_seconds: 28800,
            ttl_seconds_after_finished: 86400,
          },
        },
      });
      const plan = await planWith(manifests, 'go-defaults');
      expect(plan.backend).toBe('kubernetes');
      expect(plan.launch.job.metadata.namespace).toBe('agents');
      expect(plan.launch.job.spec).toMatchObject({ activeDeadlineSeconds: 28800, ttlSecondsAfterFinished: 86400 });
    });

    it('runs one worker that stops before the next starts, with its own liveness probe and ours for readiness', async () => {
      const manifests = await render();
      expectValidKubernetes(manifests);
      expect(manifests.map((m) => `${m.kind}/${m.metadata.name}`).sort()).toEqual(
        [
          'ConfigMap/oz-agent-worker-oz-worker-config',
          'Deployment/oz-agent-worker-oz-worker',
          'Role/oz-agent-worker-oz-worker',
          'RoleBinding/oz-agent-worker-oz-worker',
          'ServiceAccount/oz-agent-worker-oz-worker',
        ].sort(),
      );
      const deployment = only(manifests, 'Deployment');
      expect(deployment.spec.replicas).toBe(1);
      expect(deployment.spec.strategy.type).toBe('Recreate');
      const worker = container(deployment);
      expect(worker.image).toBe('registry.example.com/oz-worker:ci');
      // The values file set worker.livenessProbe: it is used as written.
      expect(worker.livenessProbe).toEqual({
        exec: { command: ['/bin/sh', '-c', 'kill -0 1'] },
        initialDelaySeconds: 10,
        periodSeconds: 30,
        failureThreshold: 3,
      });
      expect(worker.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
      expect(envOf(deployment)).toEqual({ WARP_API_KEY: { secretKeyRef: { name: 'oz-agent-worker', key: 'WARP_API_KEY' } }, OTEL_METRICS_EXPORTER: 'none' });
      expect(worker.args).toEqual(
        expect.arrayContaining([
          '--web-socket-url=wss://oz.warp.dev/api/v1/selfhosted/worker/ws',
          '--server-root-url=https://app.warp.dev',
          '--log-level=info',
        ]),
      );
      expect(worker.resources.requests).toEqual({ cpu: '100m', memory: '128Mi' });
      expect(deployment.spec.template.spec.securityContext).toEqual({
        runAsNonRoot: true,
        runAsUser: 10001,
        runAsGroup: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      });
    });

    it('refuses the Go image and says what to set', async () => {
      const stderr = await templateFails(['-f', GO_DEFAULTS, '--set', 'worker.workerId=ci-worker', '--set', 'image.tag=ci']);
      expect(stderr).toContain("image.repository is warpdotdev/oz-agent-worker, the Go worker's image");
      expect(stderr).toContain('set image.repository and image.tag to an oz-worker image');
    });

    it("keeps the Go release's object names and Deployment selector with nameOverride", async () => {
      const manifests = await template(['-f', GO_DEFAULTS, '--set', 'worker.workerId=w', '--set', 'nameOverride=oz-agent-worker', ...OUR_IMAGE]);
      const deployment = only(manifests, 'Deployment', 'oz-agent-worker');
      expect(deployment.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'oz-agent-worker', 'app.kubernetes.io/instance': 'oz-agent-worker' });
      only(manifests, 'ConfigMap', 'oz-agent-worker-config');
      only(manifests, 'ServiceAccount', 'oz-agent-worker');
      only(manifests, 'Role', 'oz-agent-worker');
    });
  });

  describe('with a values file that sets every key', () => {
    const render = () => template(['-f', EVERY_KEY], 'team-a', 'platform');

    it('renders objects Kubernetes accepts, named by fullnameOverride', async () => {
      const manifests = await render();
      expectValidKubernetes(manifests);
      expect(manifests.map((m) => `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`).sort()).toEqual(
        [
          'ConfigMap/platform/team-a-worker-config',
          'Deployment/platform/team-a-worker',
          'PodMonitor/platform/team-a-worker',
          'Role/platform/team-a-worker',
          'Role/team-a-tasks/team-a-worker',
          'RoleBinding/platform/team-a-worker',
          'RoleBinding/team-a-tasks/team-a-worker',
          'Secret/platform/team-a-key',
          'Service/platform/team-a-worker-metrics',
          'ServiceAccount/platform/team-a-sa',
        ].sort(),
      );
    });

    it('puts worker.* and kubernetesBackend.* into the worker config, and the worker runs it as asked', async () => {
      const manifests = await render();
      expect(configOf(manifests)).toEqual({
        worker_id: 'team-a',
        cleanup: true,
        max_concurrent_tasks: 7,
        idle_on_complete: '10m',
        backend: {
          kubernetes: {
            namespace: 'team-a-tasks',
            default_image: 'registry.example.com/base:22.04',
            image_pull_policy: 'Always',
            use_image_volumes: true,
            preflight_image: 'registry.example.com/busybox:1.36',
            sidecar_image: 'registry.example.com/warp-agent:1.0',
            setup_command: 'printf \'SETUP=done\\n\' > "$OZ_ENVIRONMENT_FILE"\necho "ready: yes"\n',
            teardown_command: 'rm -rf "$OZ_WORKSPACE_ROOT/tmp"',
            extra_labels: { team: 'a' },
            extra_annotations: { 'cost-center': '42' },
            active_deadline_seconds: 3600,
            ttl_seconds_after_finished: 1000000,
            workspace_size_limit: '10Gi',
            unschedulable_timeout: '2m',
            pod_template: {
              serviceAccountName: 'task-runner',
              imagePullSecrets: [{ name: 'registry-creds' }],
              nodeSelector: { workload: 'agents' },
              containers: [
                {
                  name: 'task',
                  resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { cpu: '1', memory: '1Gi' } },
                  env: [{ name: 'SECRET_VALUE', valueFrom: { secretKeyRef: { name: 'my-secret', key: 'value' } } }],
                },
              ],
            },
            preflight_resources: { requests: { cpu: '20m', memory: '32Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
          },
        },
      });
      const plan = await planWith(manifests, 'every-key');
      const job = plan.launch.job;
      expect(job.metadata.namespace).toBe('team-a-tasks');
      expect(job.metadata.labels).toMatchObject({ team: 'a' });
      expect(job.metadata.annotations).toMatchObject({ 'cost-center': '42' });
      expect(job.spec).toMatchObject({ activeDeadlineSeconds: 3600, ttlSecondsAfterFinished: 1000000 });
      const pod = job.spec.template.spec;
      expect(pod.serviceAccountName).toBe('task-runner');
      expect(pod.initContainers.map((c: { name: string }) => c.name)).toContain('setup');
      const task = pod.containers.find((c: { name: string }) => c.name === 'task');
      expect(task.imagePullPolicy).toBe('Always');
      expect(task.lifecycle.preStop.exec.command.join(' ')).toContain('rm -rf "$OZ_WORKSPACE_ROOT/tmp"');
      expect(pod.volumes.find((v: { name: string }) => v.name === 'workspace').emptyDir.sizeLimit).toBe('10Gi');
    });

    it('puts image.*, warp.* and worker.* into the Deployment', async () => {
      const manifests = await render();
      const deployment = only(manifests, 'Deployment');
      expect(deployment.metadata.annotations).toEqual({ owner: 'platform' });
      const podTemplate = deployment.spec.template;
      expect(podTemplate.metadata.labels).toEqual({ 'app.kubernetes.io/name': 'agent', 'app.kubernetes.io/instance': 'team-a', team: 'a' });
      expect(podTemplate.metadata.annotations).toMatchObject({ 'sidecar.example.com/inject': 'false' });
      expect(Object.keys(podTemplate.metadata.annotations)).toEqual(expect.arrayContaining(['checksum/config', 'checksum/secret']));
      const pod = podTemplate.spec;
      expect(pod.serviceAccountName).toBe('team-a-sa');
      expect(pod.terminationGracePeriodSeconds).toBe(45);
      expect(pod.imagePullSecrets).toEqual([{ name: 'registry-creds' }]);
      expect(pod.securityContext).toEqual({
        runAsNonRoot: true,
        runAsUser: 20002,
        runAsGroup: 20002,
        fsGroup: 20002,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.nodeSelector).toEqual({ pool: 'system' });
      expect(pod.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'system', effect: 'NoSchedule' }]);
      expect(pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]).toEqual({
        key: 'kubernetes.io/arch',
        operator: 'In',
        values: ['amd64'],
      });
      const worker = container(deployment);
      expect(worker.image).toBe('registry.example.com/platform/oz-worker:2.3.4');
      expect(worker.imagePullPolicy).toBe('Always');
      expect(worker.args).toEqual(
        expect.arrayContaining([
          '--log-level=debug',
          '--web-socket-url=wss://dispatch.example.com/api/v1/selfhosted/worker/ws',
          '--server-root-url=https://warp.example.com',
          '--shutdown-grace-period=20s',
        ]),
      );
      expect(worker.args.at(-1)).toBe('--shutdown-grace-period=20s');
      expect(envOf(deployment)).toEqual({
        WARP_API_KEY: { secretKeyRef: { name: 'team-a-key', key: 'API_KEY' } },
        HTTPS_PROXY: 'http://proxy.example.com:3128',
        OTEL_METRICS_EXPORTER: 'prometheus',
        OTEL_EXPORTER_PROMETHEUS_HOST: '0.0.0.0',
        OTEL_EXPORTER_PROMETHEUS_PORT: '9555',
        OTEL_RESOURCE_ATTRIBUTES: 'team=a',
      });
      expect(worker.ports).toEqual([
        { name: 'health', containerPort: 8080, protocol: 'TCP' },
        { name: 'metrics', containerPort: 9555, protocol: 'TCP' },
      ]);
      expect(worker.livenessProbe).toEqual({ exec: { command: ['/bin/sh', '-c', 'kill -0 1'] }, initialDelaySeconds: 15, periodSeconds: 20 });
      expect(worker.securityContext).toMatchObject({ allowPrivilegeEscalation: false, privileged: false });
      expect(worker.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } });
    });

    it('makes the Secret, ServiceAccount, Roles, Service and PodMonitor the values ask for', async () => {
      const manifests = await render();
      expect(only(manifests, 'Secret').stringData).toEqual({ API_KEY: 'wk-test-value' });
      expect(only(manifests, 'ServiceAccount').metadata.annotations).toEqual({ 'iam.example.com/role': 'oz-worker' });
      const needed = REQUIRED_ACCESS.map((a) => `${a.verb} ${a.group}/${a.resource}${a.subresource ? `/${a.subresource}` : ''}`).sort();
      for (const role of manifests.filter((m) => m.kind === 'Role')) {
        const granted = role.rules.flatMap((rule: { apiGroups: string[]; resources: string[]; verbs: string[] }) =>
          rule.apiGroups.flatMap((group) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => `${verb} ${group}/${resource}`))),
        );
        expect(granted.sort(), `Role in ${role.metadata.namespace}`).toEqual(needed);
      }
      for (const binding of manifests.filter((m) => m.kind === 'RoleBinding')) {
        expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'team-a-sa', namespace: 'platform' }]);
      }
      const service = only(manifests, 'Service');
      expect(service.spec.type).toBe('NodePort');
      expect(service.spec.ports).toEqual([{ name: 'metrics', port: 9555, targetPort: 'metrics', protocol: 'TCP' }]);
      expect(service.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/path': '/metrics', 'prometheus.io/port': '9555' });
      const monitor = only(manifests, 'PodMonitor');
      expect(monitor.metadata.labels).toMatchObject({ release: 'prometheus' });
      expect(monitor.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'agent', 'app.kubernetes.io/instance': 'team-a' });
      expect(monitor.spec.podMetricsEndpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '15s', scrapeTimeout: '5s' }]);
    });
  });

  describe('with a values file for the newest Go chart, every key set', () => {
    const render = () => template(['-f', LATEST_EVERY_KEY], 'team-a', 'platform');

    it('renders what the earlier every-key file rendered, plus the later keys, and the worker takes it', async () => {
      const [latest, earlier] = await Promise.all([render(), template(['-f', EVERY_KEY], 'team-a', 'platform')]);
      expectValidKubernetes(latest);
      expect(latest.map((m) => `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`).sort()).toEqual(
        earlier.map((m) => `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`).sort(),
      );
      const config = configOf(latest);
      expect(config).toEqual({ ...configOf(earlier), backend: { kubernetes: { ...configOf(earlier).backend.kubernetes, volume_mount_timeout: '90s' } } });
      const deployment = only(latest, 'Deployment');
      expect(container(deployment).args).toContain('--backend=kubernetes');
      expect(container(deployment).volumeMounts).toContainEqual({ name: 'ssh-keys', mountPath: '/home/oz/.ssh', readOnly: true });
      expect(deployment.spec.template.spec.volumes).toContainEqual({ name: 'ssh-keys', secret: { secretName: 'team-a-ssh', defaultMode: 256 } });
      // The chart's own volumes stay.
      expect(container(deployment).volumeMounts.map((m: { name: string }) => m.name)).toEqual(['config', 'tmp', 'state', 'ssh-keys']);
      const plan = await planWith(latest, 'latest-every-key');
      expect(plan.backend).toBe('kubernetes');
    });
  });

  describe("with the Go chart's command-backend values", () => {
    const render = () => template(['-f', GO_COMMAND, ...OUR_IMAGE]);

    it('renders the command backend config, flag, script mount and Secret-backed env, and no Role', async () => {
      const manifests = await render();
      expectValidKubernetes(manifests);
      expect(configOf(manifests)).toEqual({
        worker_id: 'ci-command-worker',
        cleanup: true,
        max_concurrent_tasks: 0,
        backend: {
          command: {
            dispatch_command: 'python3 /opt/oz/dispatch.py',
            cancel_command: 'python3 /opt/oz/cancel.py',
            dispatch_timeout: '45s',
            environment: [{ name: 'OZ_DISPATCH_URL', value: 'https://runtime.example.test/dispatch' }, { name: 'OZ_DISPATCH_AUTH_HEADER' }],
          },
        },
      });
      const deployment = only(manifests, 'Deployment');
      const worker = container(deployment);
      expect(worker.args).toContain('--backend=command');
      expect(worker.args).not.toContain('--backend=kubernetes');
      expect(worker.volumeMounts).toContainEqual({ name: 'dispatch-scripts', mountPath: '/opt/oz', readOnly: true });
      expect(deployment.spec.template.spec.volumes).toContainEqual({ name: 'dispatch-scripts', configMap: { name: 'oz-dispatch' } });
      expect(envOf(deployment).OZ_DISPATCH_AUTH_HEADER).toEqual({ secretKeyRef: { name: 'oz-dispatch-credentials', key: 'OZ_DISPATCH_AUTH_HEADER' } });
      expect(manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'ServiceAccount']);
      const plan = await planWith(manifests, 'go-command');
      expect(plan.backend).toBe('command');
    });

    it('keeps the Role and the kubernetes flag by default', async () => {
      const manifests = await template(['--set', 'worker.workerId=ci-kubernetes-worker']);
      expect(container(only(manifests, 'Deployment')).args).toContain('--backend=kubernetes');
      only(manifests, 'Role');
      only(manifests, 'RoleBinding');
    });

    it('refuses another backend.type, and the command backend without a dispatch command', async () => {
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'backend.type=invalid'])).toContain('backend.type must be "kubernetes" or "command"');
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'backend.type=command'])).toContain(
        'commandBackend.dispatchCommand is required when backend.type=command',
      );
    });

    it('renders the 60s dispatch timeout by default, and no cancel command or environment unless given', async () => {
      const manifests = await template([
        '--set',
        'worker.workerId=w',
        '--set',
        'backend.type=command',
        '--set',
        'commandBackend.dispatchCommand=/opt/oz/dispatch.sh',
      ]);
      expect(configOf(manifests).backend).toEqual({ command: { dispatch_command: '/opt/oz/dispatch.sh', dispatch_timeout: '60s' } });
    });
  });

  describe('with objects turned off', () => {
    it('uses an existing ServiceAccount, makes no RBAC, and exports OTLP without a Service or PodMonitor', async () => {
      const manifests = await template([
        '--set',
        'worker.workerId=w1',
        '--set',
        'serviceAccount.create=false',
        '--set',
        'serviceAccount.name=platform-sa',
        '--set',
        'rbac.create=false',
        '--set',
        'metrics.enabled=true',
        '--set',
        'metrics.exporter=otlp',
        '--set',
        'metrics.podMonitor.create=true',
        '--set',
        'metrics.extraEnv[0].name=OTEL_EXPORTER_OTLP_ENDPOINT',
        '--set',
        'metrics.extraEnv[0].value=http://collector:4318',
      ]);
      expect(manifests.map((m) => m.kind).sort()).toEqual(['ConfigMap', 'Deployment']);
      const deployment = only(manifests, 'Deployment');
      expect(deployment.spec.template.spec.serviceAccountName).toBe('platform-sa');
      expect(envOf(deployment)).toMatchObject({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' });
      expect(envOf(deployment)).not.toHaveProperty('OTEL_EXPORTER_PROMETHEUS_PORT');
      expect(container(deployment).ports.map((p: { name: string }) => p.name)).toEqual(['health']);
    });

    it('makes no metrics Service when metrics.service.create is false', async () => {
      const manifests = await template(['--set', 'worker.workerId=w1', '--set', 'metrics.enabled=true', '--set', 'metrics.service.create=false']);
      expect(manifests.some((m) => m.kind === 'Service')).toBe(false);
      expect(container(only(manifests, 'Deployment')).ports.map((p: { name: string }) => p.name)).toEqual(['health', 'metrics']);
    });
  });

  describe("with this chart's own defaults", () => {
    it('probes /livez and /readyz, and the worker accepts the config and every flag', async () => {
      const manifests = await template(['--set', 'worker.workerId=w1'], 'oz-worker', 'oz-agents');
      expectValidKubernetes(manifests);
      const worker = container(only(manifests, 'Deployment', 'oz-worker'));
      expect(worker.image).toBe('oz-worker:0.1.0');
      expect(worker.livenessProbe.httpGet).toEqual({ path: '/livez', port: 'health' });
      expect(worker.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
      expect(worker.args).toContain('--health-listen=0.0.0.0:8080');
      // Defaults the worker shares are left out (an older worker image takes the render); 10m is written out.
      const config = configOf(manifests);
      expect(config.backend.kubernetes.unschedulable_timeout).toBe('10m');
      expect(config.backend.kubernetes).not.toHaveProperty('volume_mount_timeout');
      expect(config).not.toHaveProperty('collect_task_logs');
      await planWith(manifests, 'ours');
    });

    it('writes collect_task_logs and volume_mount_timeout when set away from the defaults', async () => {
      const manifests = await template([
        '--set',
        'worker.workerId=w1',
        '--set',
        'worker.collectTaskLogs=false',
        '--set',
        'kubernetesBackend.volumeMountTimeout=0s',
      ]);
      const config = configOf(manifests);
      expect(config.collect_task_logs).toBe(false);
      expect(config.backend.kubernetes.volume_mount_timeout).toBe('0s');
    });

    it('leaves the probes out when set to null, and the deadline out when activeDeadlineSeconds is null', async () => {
      const manifests = await template([
        '--set',
        'worker.workerId=w1',
        '--set',
        'worker.livenessProbe=null',
        '--set',
        'worker.readinessProbe=null',
        '--set',
        'kubernetesBackend.activeDeadlineSeconds=null',
      ]);
      const worker = container(only(manifests, 'Deployment'));
      expect(worker.livenessProbe).toBeUndefined();
      expect(worker.readinessProbe).toBeUndefined();
      expect(configOf(manifests).backend.kubernetes.active_deadline_seconds).toBe(0);
      const plan = await planWith(manifests, 'no-deadline');
      expect(plan.launch.job.spec.activeDeadlineSeconds).toBeUndefined();
    });

    it('sets no Job TTL when worker.cleanup is false, and 0 when asked', async () => {
      const noCleanup = await template(['--set', 'worker.workerId=w1', '--set', 'worker.cleanup=false']);
      expect(configOf(noCleanup)).toMatchObject({ cleanup: false });
      expect(configOf(noCleanup).backend.kubernetes.ttl_seconds_after_finished).toBeUndefined();
      const zero = await template(['--set', 'worker.workerId=w1', '--set', 'kubernetesBackend.ttlSecondsAfterFinished=0']);
      expect(configOf(zero).backend.kubernetes.ttl_seconds_after_finished).toBe(0);
    });
  });

  describe('refuses bad values naming them', () => {
    it('an unknown key, at any depth', async () => {
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'worker.workerID=w'])).toMatch(/workerID/);
      const legacy = join(scratch, 'legacy.yaml');
      writeFileSync(legacy, 'worker:\n  workerId: w\nkubernetesBackend:\n  nodeSelector: {pool: agents}\n');
      const stderr = await templateFails(['-f', legacy]);
      expect(stderr).toMatch(/kubernetesBackend/);
      expect(stderr).toMatch(/nodeSelector/);
    });

    it('replicaCount from older Go values files only as 1: a release is one worker', async () => {
      await template(['--set', 'worker.workerId=w', '--set', 'replicaCount=1']);
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'replicaCount=2'])).toMatch(/replicaCount.*must be 1/);
    });

    it('a missing worker id, a value of the wrong kind, and a chart-made Secret without a value', async () => {
      expect(await templateFails([])).toContain('worker.workerId is required');
      expect(await templateFails(['--set', 'worker.workerId=warp-fleet'])).toContain('worker.workerId "warp-fleet" starts with "warp", which is reserved');
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'worker.logLevel=verbose'])).toMatch(/logLevel/);
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'kubernetesBackend.imagePullPolicy=always'])).toMatch(/imagePullPolicy/);
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'warp.apiKeySecret.create=true'])).toContain('warp.apiKeySecret.value is required');
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'serviceAccount.create=false'])).toContain('serviceAccount.name is required');
      expect(await templateFails(['--set', 'worker.workerId=w', '--set', 'metrics.enabled=true', '--set', 'metrics.port=8080'])).toContain(
        'metrics.port and worker.healthPort are both 8080',
      );
    });
  });
});

describe.skipIf(!helm)('k8s/ plain manifests', () => {
  it('are what the chart renders (node k8s/render.mjs --check)', async () => {
    const result = await run(process.execPath, [join(REPO_ROOT, 'k8s/render.mjs'), '--check'], { env: { HELM_BIN: helm } });
    expect(result.code, result.stderr).toBe(0);
  });

  it('bind the ServiceAccount of the namespace kustomize puts them in', async () => {
    const kubectl = readEnvFile(join(CACHE, 'kube', 'env', 'env'))?.OZ_KUBE_KUBECTL || 'kubectl';
    const overlay = join(scratch, 'overlay');
    mkdirSync(overlay, { recursive: true });
    writeFileSync(join(overlay, 'kustomization.yaml'), `namespace: team-b\nresources: [${relative(overlay, join(REPO_ROOT, 'k8s'))}]\n`);
    const result = await run(kubectl, ['kustomize', overlay]);
    expect(result.code, result.stderr).toBe(0);
    const objects = parseManifests(result.stdout);
    expect(objects.every((object) => object.metadata.namespace === 'team-b')).toBe(true);
    expect(only(objects, 'RoleBinding').subjects).toEqual([{ kind: 'ServiceAccount', name: 'oz-worker', namespace: 'team-b' }]);
  });

  it('a hand edit is caught, naming the file', async () => {
    const copy = join(scratch, 'k8s');
    cpSync(join(REPO_ROOT, 'k8s'), copy, { recursive: true });
    const edited = readFileSync(join(copy, 'deployment.yaml'), 'utf8').replace('replicas: 1', 'replicas: 2');
    writeFileSync(join(copy, 'deployment.yaml'), edited);
    const result = await run(process.execPath, [join(copy, 'render.mjs'), '--check'], { env: { HELM_BIN: helm } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('deployment.yaml differ');
  });
});
