// `oz-worker doctor`: why would a task not run here? One check per line, each
// failure with the fix. Side-effect free: it connects to the dispatch server
// under a separate worker id and closes at once, creates nothing in a cluster
// and nothing on disk.
import { constants, existsSync, readFileSync } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import { WebSocket } from 'ws';
import { workerSocketUrl } from '../connection/connection.js';
import { dispatchAgent } from '../connection/transport.js';
import type { WorkerConfig, WorkerConfigFor } from '../config/worker-config.js';
import { chooseExporter } from '../observability/metrics.js';
import { describeScope } from '../scope/decide.js';
import { errorMessage } from '../errors/error-message.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about a failed check. */
  fix?: string;
  /** Not run, and why (it needs something that is missing). */
  skipped?: string;
  /** Passed, with something worth knowing (a config key the worker ignores). */
  warning?: boolean;
}

const TIMEOUT_MS = 10_000;

/** Opens the worker's WebSocket with its credentials and closes it again. */
export function checkServer(config: WorkerConfig, env: NodeJS.ProcessEnv): Promise<Check> {
  const name = 'dispatch server';
  const url = workerSocketUrl(config.webSocketUrl, `${config.workerId}-doctor`, config.device?.deviceId);
  return new Promise((resolveCheck) => {
    let settled = false;
    const done = (check: Check): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.terminate();
      resolveCheck(check);
    };
    const socket = new WebSocket(url, {
      headers: { Authorization: `Bearer ${config.apiKey}` },
      handshakeTimeout: TIMEOUT_MS,
      agent: dispatchAgent({ url: config.webSocketUrl, env, ...(config.caPem ? { ca: config.caPem } : {}) }),
    });
    const timer = setTimeout(
      () =>
        done({
          name,
          ok: false,
          detail: `no answer from ${config.webSocketUrl} within ${TIMEOUT_MS / 1000} s`,
          fix: 'check --web-socket-url, the network path and HTTPS_PROXY',
        }),
      TIMEOUT_MS,
    );
    socket.on('open', () => {
      socket.close(1000);
      done({ name, ok: true, detail: `${config.webSocketUrl} is reachable and accepted the API key` });
    });
    socket.on('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      if (status === 401 || status === 403) {
        done({
          name,
          ok: false,
          detail: `the server refused the API key (HTTP ${status})`,
          fix: 'check WARP_API_KEY / --api-key / --api-key-file: it must be a valid worker key for this server (a typo, a revoked key, or a key of another account)',
        });
      } else {
        done({
          name,
          ok: false,
          detail: `the server answered the WebSocket upgrade with HTTP ${status}`,
          fix: 'check --web-socket-url (it must be the worker WebSocket endpoint)',
        });
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      done({
        name,
        ok: false,
        detail: `cannot reach ${config.webSocketUrl}: ${error.code ?? error.message}${error.code ? ` (${error.message})` : ''}`,
        fix: 'check --web-socket-url, DNS and firewalls; behind a proxy set HTTPS_PROXY; with a private CA pass --ca-file',
      });
    });
  });
}

async function checkDirect(config: WorkerConfigFor<'direct'>): Promise<Check[]> {
  const checks: Check[] = [];
  const { findOnPath } = await import('../backends/direct/direct-backend.js');
  const configured = config.direct.ozPath;
  const oz = configured
    ? configured.includes('/')
      ? resolve(configured)
      : await findOnPath(configured, process.env.PATH)
    : await findOnPath('oz', process.env.PATH);
  if (!oz || !existsSync(oz)) {
    checks.push({
      name: 'oz CLI',
      ok: false,
      detail: configured ? `${configured} not found` : 'oz is not on PATH',
      fix: 'install the oz CLI, or point --oz-path / backend.direct.oz_path at it',
    });
  } else {
    const { execa } = await import('execa');
    const result = await execa(oz, ['--version'], { timeout: TIMEOUT_MS, reject: false, stdin: 'ignore' });
    checks.push(
      result.exitCode === 0
        ? { name: 'oz CLI', ok: true, detail: `${oz} runs (${result.stdout.trim().split('\n')[0] || 'no version printed'})` }
        : {
            name: 'oz CLI',
            ok: false,
            detail: `${oz} --version failed: ${
              String(result.stderr || result.shortMessage || '')
                .trim()
                .split('\n')
                .pop() ?? ''
            }`,
            fix: 'reinstall the oz CLI or fix --oz-path',
          },
    );
  }
  const dir = config.direct.targetDir ? resolve(config.direct.targetDir) : resolve(config.direct.workspaceRoot);
  checks.push(await checkWritable(dir, Boolean(config.direct.targetDir)));
  return checks;
}

/**
 * Whether the worker could create (or use) the directory, without creating it:
 * the directory itself if it exists, else the nearest existing parent, must be
 * writable by this user.
 */
export async function checkWritable(dir: string, targetDir: boolean): Promise<Check> {
  const name = 'workspace';
  const flag = targetDir ? '--target-dir / backend.direct.target_dir' : '--workspace-root / backend.direct.workspace_root';
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  try {
    if (!(await stat(existing)).isDirectory()) {
      return { name, ok: false, detail: `${existing} is not a directory, so ${dir} cannot be created`, fix: `point ${flag} somewhere else` };
    }
    await access(existing, constants.W_OK | constants.X_OK);
  } catch (error) {
    return {
      name,
      ok: false,
      detail:
        existing === dir
          ? `${dir} is not writable by this user (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)})`
          : `${dir} does not exist and this user cannot create it: ${existing} is not writable`,
      fix: `set ${flag} to a directory this user can create and write`,
    };
  }
  return { name, ok: true, detail: existing === dir ? `${dir} is writable` : `${dir} will be created (${existing} is writable)` };
}

async function checkDocker(): Promise<Check[]> {
  const [{ discoverDocker }, { HttpDockerEngine, connectionProblem }] = await Promise.all([
    import('../backends/docker/discovery.js'),
    import('../backends/docker/engine.js'),
  ]);
  const readText = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  try {
    const discovery = discoverDocker({ env: process.env, home: homedir(), readFile: readText, exists: existsSync });
    const engine = new HttpDockerEngine(discovery.endpoint, discovery.apiVersion);
    try {
      // The worker's own wording (what is wrong, what to do), not the bare socket error.
      await engine.ping(TIMEOUT_MS).catch((error: unknown) => {
        throw new Error(connectionProblem(error, discovery.endpoint));
      });
      const version = await engine.version();
      return [
        {
          name: 'Docker Engine',
          ok: true,
          detail: `${discovery.endpoint.url} answers (Docker ${version.Version ?? '?'}, ${version.Os ?? '?'}/${version.Arch ?? '?'})`,
        },
      ];
    } finally {
      await engine.close().catch(() => undefined);
    }
  } catch (error) {
    return [
      {
        name: 'Docker Engine',
        ok: false,
        detail: errorMessage(error),
        fix: "start Docker, or set DOCKER_HOST; if permission is denied add the user to the 'docker' group or use rootless Docker",
      },
    ];
  }
}

async function checkKubernetes(config: WorkerConfigFor<'kubernetes'>): Promise<Check[]> {
  const [{ createKubeClient }, { REQUIRED_ACCESS }, { workerSelector }, { readPodTemplate }] = await Promise.all([
    import('../backends/kubernetes/client.js'),
    import('../backends/kubernetes/startup-checks.js'),
    import('../backends/kubernetes/names.js'),
    import('../backends/kubernetes/pod-template.js'),
  ]);
  const checks: Check[] = [];
  try {
    readPodTemplate(config.kubernetes.podTemplate);
    if (config.kubernetes.podTemplate) checks.push({ name: 'pod_template', ok: true, detail: 'every field is a Kubernetes PodSpec field' });
  } catch (error) {
    checks.push({ name: 'pod_template', ok: false, detail: errorMessage(error), fix: 'fix the field in backend.kubernetes.pod_template' });
  }
  const { namespace } = config.kubernetes;
  let client;
  try {
    client = createKubeClient({ namespace, kubeconfig: config.kubernetes.kubeconfig });
    const version = await client.version();
    checks.push({ name: 'Kubernetes API', ok: true, detail: `${client.server} answers (${version})` });
  } catch (error) {
    checks.push({
      name: 'Kubernetes API',
      ok: false,
      detail: errorMessage(error),
      fix: 'check backend.kubernetes.kubeconfig, the in-cluster service account, or ~/.kube/config',
    });
    return checks;
  }
  try {
    const jobs = await client.listJobs(workerSelector(config.workerId));
    checks.push({ name: 'namespace', ok: true, detail: `namespace "${namespace}" is reachable (${jobs.length} Job(s) of this worker)` });
  } catch (error) {
    checks.push({
      name: 'namespace',
      ok: false,
      detail: errorMessage(error),
      fix: `check that namespace "${namespace}" exists and the worker may list Jobs there`,
    });
  }
  for (const access of REQUIRED_ACCESS) {
    const what = `${access.verb} ${access.group ? `${access.group}/` : ''}${access.resource}${access.subresource ? `/${access.subresource}` : ''}`;
    try {
      const { allowed, reason } = await client.canI(access);
      checks.push(
        allowed
          ? { name: `RBAC ${what}`, ok: true, detail: `allowed (${access.why})` }
          : {
              name: `RBAC ${what}`,
              ok: false,
              detail: `denied${reason ? `: ${reason}` : ''}`,
              fix: `grant "${access.verb}" on ${access.resource} in the worker's Role (see k8s/role.yaml)`,
            },
      );
    } catch (error) {
      checks.push({
        name: `RBAC ${what}`,
        ok: false,
        detail: errorMessage(error),
        fix: 'the cluster did not answer the SelfSubjectAccessReview; check API access',
      });
    }
  }
  return checks;
}

function checkCommand(config: WorkerConfigFor<'command'>): Check[] {
  const command = config.command.dispatchCommand;
  if (!command)
    return [{ name: 'dispatch command', ok: false, detail: 'backend.command.dispatch_command is not set', fix: 'set backend.command.dispatch_command' }];
  if (!existsSync('/bin/sh'))
    return [{ name: 'dispatch command', ok: false, detail: '/bin/sh is missing', fix: 'the command backend runs dispatch_command with /bin/sh -c' }];
  return [{ name: 'dispatch command', ok: true, detail: `runs through /bin/sh -c: ${command}` }];
}

/** Every check after the config: scope, server, backend, metrics. */
export async function runChecks(config: WorkerConfig, env: NodeJS.ProcessEnv, options: { skipServer?: string } = {}): Promise<Check[]> {
  const checks: Check[] = [];
  if (config.device) checks.push({ name: 'device scope', ok: true, detail: `runs only tasks of ${describeScope(config.device)}` });
  const backendChecks = (async (): Promise<Check[]> => {
    switch (config.backend) {
      case 'direct':
        return checkDirect(config);
      case 'docker':
        return checkDocker();
      case 'kubernetes':
        return checkKubernetes(config);
      case 'command':
        return checkCommand(config);
    }
  })();
  const serverCheck: Promise<Check> = options.skipServer
    ? Promise.resolve({ name: 'dispatch server', ok: true, detail: `skipped: ${options.skipServer}`, skipped: options.skipServer })
    : checkServer(config, env);
  const [server, backend] = await Promise.all([serverCheck, backendChecks]);
  checks.push(server, ...backend);
  const exporter = chooseExporter(env);
  checks.push(
    exporter.kind === 'invalid'
      ? { name: 'metrics', ok: false, detail: exporter.message, fix: 'set OTEL_METRICS_EXPORTER to prometheus, otlp, console or none' }
      : {
          name: 'metrics',
          ok: true,
          detail:
            exporter.kind === 'none'
              ? `off (${exporter.why})`
              : exporter.kind === 'prometheus'
                ? `Prometheus on ${exporter.host}:${exporter.port}`
                : exporter.kind,
        },
  );
  return checks;
}

export function formatChecks(checks: readonly Check[]): string {
  return checks
    .map((c) => `${c.skipped ? '-' : c.ok ? (c.warning ? '!' : '✔') : '✘'} ${c.name}: ${c.detail}${c.ok || !c.fix ? '' : `\n    fix: ${c.fix}`}`)
    .join('\n');
}
