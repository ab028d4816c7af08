// The real test cluster started by test/infra/kube/up.sh: found through the env
// file it writes ($OZ_TEST_CACHE/kube/env/env), reached with its admin
// kubeconfig. Gives the suites kubectl, the API objects they assert on, faults
// (ctl.sh), a namespace per test and the config of a worker on the cluster.
import * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach } from 'vitest';
import { lockCluster } from './cluster-lock.js';
import { tempDir } from './worker-process.js';
export { lockCluster };

/** What a test leaves to undo; run newest first after it (`oneTestAtATimeOnTheCluster`). */
export type Cleanups = Array<() => unknown>;

const run = promisify(execFile);

export interface RealCluster {
  kubeconfig: string;
  server: string;
  kubectlPath: string;
  ctlPath: string;
  nodeName: string;
  agentImage: string;
  workerImage: string;
  registryPort: number;
  version: string;
}

export const CACHE = process.env.OZ_TEST_CACHE ?? '/root/.cache/oz-worker-test';
export const ENV_FILE = join(CACHE, 'kube/env/env');

function readEnvFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** The running cluster, or why there is none (the suites print that once and skip). */
export async function findCluster(): Promise<RealCluster | { skip: string }> {
  if (!existsSync(ENV_FILE)) return { skip: `no cluster env file at ${ENV_FILE} (start one with bash test/infra/kube/up.sh)` };
  const env = readEnvFile(ENV_FILE);
  const cluster: RealCluster = {
    kubeconfig: env.OZ_KUBE_KUBECONFIG ?? '',
    server: env.OZ_KUBE_SERVER ?? '',
    kubectlPath: env.OZ_KUBE_KUBECTL ?? '',
    // This checkout's ctl.sh: the cluster may have been started by another checkout (it is shared through the cache).
    ctlPath: join(import.meta.dirname, '../infra/kube/ctl.sh'),
    nodeName: env.OZ_KUBE_NODE_NAME ?? '',
    agentImage: env.OZ_KUBE_AGENT_IMAGE ?? '',
    workerImage: env.OZ_KUBE_WORKER_IMAGE ?? '',
    registryPort: Number(env.OZ_KUBE_REGISTRY_PORT ?? 0),
    version: env.OZ_KUBE_VERSION ?? '',
  };
  try {
    await run(cluster.kubectlPath, ['--kubeconfig', cluster.kubeconfig, '--request-timeout=5s', 'get', '--raw', '/readyz'], { timeout: 10_000 });
  } catch (error) {
    return { skip: `the cluster in ${ENV_FILE} does not answer (${(error as Error).message.split('\n')[0]})` };
  }
  return cluster;
}

/** The running cluster, or undefined after printing the one line that says why `suite` skips. */
export async function clusterFor(suite: string): Promise<RealCluster | undefined> {
  const found = await findCluster();
  if (!('skip' in found)) return found;
  console.log(`${suite} skipped: ${found.skip}`);
  return undefined;
}

export class Kube {
  readonly config = new k8s.KubeConfig();
  readonly core: k8s.CoreV1Api;
  readonly batch: k8s.BatchV1Api;
  readonly rbac: k8s.RbacAuthorizationV1Api;

  constructor(readonly cluster: RealCluster) {
    this.config.loadFromFile(cluster.kubeconfig);
    this.core = this.config.makeApiClient(k8s.CoreV1Api);
    this.batch = this.config.makeApiClient(k8s.BatchV1Api);
    this.rbac = this.config.makeApiClient(k8s.RbacAuthorizationV1Api);
  }

  /** kubectl with the admin kubeconfig; rejects with its stderr. */
  async kubectl(args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const child = execFile(this.cluster.kubectlPath, ['--kubeconfig', this.cluster.kubeconfig, ...args], {
      timeout: options.timeoutMs ?? 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const done = new Promise<string>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d) => (stdout += d));
      child.stderr?.on('data', (d) => (stderr += d));
      child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`kubectl ${args.join(' ')} exited ${code}: ${stderr.trim()}`))));
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
    return done;
  }

  /** Faults: `ctl.sh stop|start|restart <component>`, `compact-etcd`, `wait-apiserver`. */
  async ctl(...args: string[]): Promise<string> {
    const { stdout } = await run('bash', [this.cluster.ctlPath, ...args], { timeout: 120_000 });
    return stdout.trim();
  }

  async createNamespace(name: string): Promise<void> {
    await this.core.createNamespace({ body: { metadata: { name, labels: { 'oz-worker.dev/test': 'real' } } } });
    // The ServiceAccount controller adds `default`; pods cannot be created before it exists. Right
    // after a test restarted kube-apiserver the controller's watches may still be backing off, so
    // after 30 s the account is created here, as the controller would create it.
    const hasDefault = async () => (await this.core.listNamespacedServiceAccount({ namespace: name })).items.some((sa) => sa.metadata?.name === 'default');
    const appeared = await until(hasDefault, 30_000, `the default ServiceAccount in ${name}`).then(
      () => true,
      () => false,
    );
    if (appeared) return;
    console.warn(`real cluster: the ServiceAccount controller had not created "default" in ${name} after 30 s; creating it`);
    await this.core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: 'default' } } }).catch((error: unknown) => {
      if (!String(error).includes('AlreadyExists') && (error as { code?: number }).code !== 409) throw error;
    });
  }

  async deleteNamespace(name: string): Promise<void> {
    await this.core.deleteNamespace({ name, propagationPolicy: 'Background' }).catch(() => undefined);
  }

  /** A namespace of the test's own (a `unique` name), deleted among its cleanups. */
  async testNamespace(prefix: string, cleanups: Cleanups): Promise<string> {
    const name = unique(prefix);
    await this.createNamespace(name);
    cleanups.push(() => this.deleteNamespace(name));
    return name;
  }

  async job(namespace: string, name: string): Promise<k8s.V1Job | undefined> {
    try {
      return await this.batch.readNamespacedJob({ namespace, name });
    } catch (error) {
      if ((error as { code?: number }).code === 404) return undefined;
      throw error;
    }
  }

  async jobs(namespace: string): Promise<k8s.V1Job[]> {
    return (await this.batch.listNamespacedJob({ namespace })).items;
  }

  async podsOfJob(namespace: string, jobName: string): Promise<k8s.V1Pod[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector: `job-name=${jobName}` })).items;
  }

  async podLog(namespace: string, pod: string, container = 'task'): Promise<string> {
    return this.core.readNamespacedPodLog({ namespace, name: pod, container });
  }
}

export async function until<T>(check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let serial = 0;
/** A name no other test, file or run on the shared cluster uses. */
export function unique(prefix: string): string {
  return `${prefix}-${process.pid}-${++serial}-${Math.random().toString(36).slice(2, 6)}`;
}

export interface KubeWorkerSettings {
  workerId: string;
  namespace: string;
  /** Top-level lines (`cleanup: false`). */
  top?: string[];
  /** Lines under backend.kubernetes; `preflight_timeout: 0s` unless they set it. */
  kubernetes?: string[];
  /** The task container's resources. */
  taskResources?: string;
  /** Lines under pod_template, after its containers. */
  podTemplate?: string[];
}

/**
 * The config file of a worker on the test cluster, in a directory of its own
 * (removed among `cleanups`); returns its path. The worker uses the admin
 * kubeconfig, runs the stand-in agent image containerd already has, skips the
 * preflight unless told, and its task pods stop at once and stay small.
 */
export function kubeWorkerConfigFile(cluster: RealCluster, settings: KubeWorkerSettings, cleanups: Cleanups): string {
  const kubernetes = settings.kubernetes ?? [];
  const dir = tempDir('real-k8s');
  cleanups.push(dir.cleanup);
  const path = join(dir.path, 'config.yaml');
  writeFileSync(
    path,
    [
      `worker_id: ${settings.workerId}`,
      ...(settings.top ?? []),
      'backend:',
      '  kubernetes:',
      `    namespace: ${settings.namespace}`,
      `    kubeconfig: ${cluster.kubeconfig}`,
      `    default_image: ${cluster.agentImage}`,
      '    image_pull_policy: IfNotPresent',
      ...kubernetes.map((line) => `    ${line}`),
      ...(kubernetes.some((line) => line.startsWith('preflight_timeout:')) ? [] : ['    preflight_timeout: 0s']),
      '    pod_template:',
      // The stand-in agent is PID 1 and ignores SIGTERM: do not wait 30 s for it.
      '      terminationGracePeriodSeconds: 1',
      '      containers:',
      '        - name: task',
      `          resources: ${settings.taskResources ?? '{limits: {memory: 160Mi}}'}`,
      ...(settings.podTemplate ?? []).map((line) => `      ${line}`),
    ].join('\n'),
  );
  return path;
}

/**
 * Registers hooks that take the cluster lock around each test and run the
 * test's cleanups (newest first) before letting go of it.
 */
export function oneTestAtATimeOnTheCluster(cleanups: Cleanups): void {
  let unlock: (() => void) | undefined;
  beforeEach(async () => {
    unlock = await lockCluster();
  }, 16 * 60_000);
  afterEach(async () => {
    try {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    } finally {
      unlock?.();
    }
  });
}
