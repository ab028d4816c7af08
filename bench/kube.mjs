// `npm run bench:kube`: the worker's Kubernetes backend at scale on the real
// control plane (test/infra/kube/up.sh): 1,000 concurrent tasks (BENCH_KUBE_TASKS),
// their pods run by a scripted node (test/support/scripted-node.ts; a real
// kubelet does not hold 1,000 pods on two cores). The worker runs as the
// ServiceAccount from k8s/ with the Role from k8s/, under k8s/deployment.yaml's
// memory limit (deployment-memory.mjs); a FlowSchema gives that identity its own
// flow, so the API server's /metrics count its requests apart from the
// controllers', scheduler's and node's. BENCH_KUBE_WARMUP tasks (default 100)
// run to the end first; RSS growth is counted from then, and from the start.
//
// Reports: API requests per task (apiserver_flowcontrol_dispatched_requests_total
// of the worker's flow, and apiserver_request_total by verb and resource), open
// watches (apiserver_longrunning_requests), worker RSS and CPU per task,
// assignment → Job created and Job condition → status received (p50/p99).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { deploymentMemoryCgroup } from './deployment-memory.mjs';
import { startStubDispatch } from './stub-dispatch.mjs';
import { lockCluster } from '../test/support/cluster-lock.ts';
import { ScriptedNode, SCRIPTED_NODE_LABEL } from '../test/support/scripted-node.ts';

const ROOT = resolve(import.meta.dirname, '..');
const TASKS = Number(process.env.BENCH_KUBE_TASKS ?? 1000);
// Tasks run to the end before the measured ones, so the RSS growth counted is what running tasks hold,
// not what the worker's first tasks cost once (V8 compiling the task path, its heap and malloc arenas sized).
const WARMUP = Number(process.env.BENCH_KUBE_WARMUP ?? 100);
const CACHE = process.env.OZ_TEST_CACHE ?? '/root/.cache/oz-worker-test';
const ENV_FILE = join(CACHE, 'kube/env/env');
const PHASE_TIMEOUT_MS = Number(process.env.BENCH_KUBE_PHASE_TIMEOUT_MS ?? 600_000);

if (!existsSync(ENV_FILE)) {
  console.log(`bench:kube skipped: no cluster (${ENV_FILE} is missing; start one with bash test/infra/kube/up.sh)`);
  process.exit(0);
}
const env = Object.fromEntries(
  readFileSync(ENV_FILE, 'utf8')
    .split('\n')
    .filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);
const kubectl = (args, input) =>
  new Promise((resolveRun, reject) => {
    const child = execFile(env.OZ_KUBE_KUBECTL, ['--kubeconfig', env.OZ_KUBE_KUBECONFIG, ...args], { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      error ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || error.message}`)) : resolveRun(stdout),
    );
    if (input !== undefined) child.stdin.end(input);
  });

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const cpuMs = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, USER_HZ = 100
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(check, what) {
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench:kube: timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Prometheus text → [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? ([^ ]+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}
const metrics = async () => parseMetrics(await kubectl(['get', '--raw', '/metrics']));
const sum = (samples, name, match) =>
  samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

// The real-cluster tests kill the API server now and then: not while this runs.
const unlock = await lockCluster(CACHE);
process.on('exit', () => unlock());
// A run that fails part-way removes what it made (best effort) before exiting.
const leftovers = [];
let workerProcess;
const failed = (error) => {
  console.error(error);
  workerProcess?.kill('SIGKILL');
  for (const args of leftovers.reverse()) {
    try {
      execFileSync(env.OZ_KUBE_KUBECTL, ['--kubeconfig', env.OZ_KUBE_KUBECONFIG, ...args], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      // already gone
    }
  }
  process.exit(1);
};
process.on('uncaughtException', failed);
process.on('unhandledRejection', failed);

// ---- set-up: namespace, the k8s/ RBAC, a token, a flow of its own, the scripted node -------------------------
const stamp = Date.now().toString(36);
const ns = `oz-bench-${stamp}`;
const flow = `oz-bench-worker-${stamp}`;
const work = mkdtempSync(join(tmpdir(), 'oz-bench-kube-'));
await kubectl(['create', 'namespace', ns]);
leftovers.push(['delete', 'namespace', ns, '--wait=false']);
for (const f of ['serviceaccount.yaml', 'role.yaml', 'rolebinding.yaml']) copyFileSync(join(ROOT, 'k8s', f), join(work, f));
writeFileSync(join(work, 'kustomization.yaml'), `namespace: ${ns}\nresources: [serviceaccount.yaml, role.yaml, rolebinding.yaml]\n`);
await kubectl(['apply', '-k', work]);
await kubectl(
  ['apply', '-f', '-'],
  JSON.stringify({
    apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
    kind: 'FlowSchema',
    metadata: { name: flow },
    spec: {
      priorityLevelConfiguration: { name: 'workload-high' },
      matchingPrecedence: 500,
      distinguisherMethod: { type: 'ByUser' },
      rules: [
        {
          subjects: [{ kind: 'ServiceAccount', serviceAccount: { name: 'oz-worker', namespace: ns } }],
          resourceRules: [{ verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['*'], clusterScope: true }],
          nonResourceRules: [{ verbs: ['*'], nonResourceURLs: ['*'] }],
        },
      ],
    },
  }),
);
leftovers.push(['delete', 'flowschema', flow]);
const token = (await kubectl(['create', 'token', 'oz-worker', '-n', ns, '--duration=2h'])).trim();
const ca = /certificate-authority-data: (\S+)/.exec(readFileSync(env.OZ_KUBE_KUBECONFIG, 'utf8'))[1];
const workerKubeconfig = join(work, 'worker.kubeconfig');
writeFileSync(
  workerKubeconfig,
  `apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: ${env.OZ_KUBE_SERVER}\n    certificate-authority-data: ${ca}\nusers:\n- name: w\n  user:\n    token: ${token}\ncontexts:\n- name: t\n  context: {cluster: t, user: w}\ncurrent-context: t\n`,
);
const node = new ScriptedNode({ kubeconfig: env.OZ_KUBE_KUBECONFIG, name: `oz-scripted-${stamp}`, capacityPods: TASKS + 100 });
leftovers.push(['delete', 'node', `oz-scripted-${stamp}`]);
await node.start();

// The bench's own view of the Jobs: one cluster-scoped watch, so the namespace-scoped watches counted are the worker's.
const kc = new k8s.KubeConfig();
kc.loadFromFile(env.OZ_KUBE_KUBECONFIG);
const batch = kc.makeApiClient(k8s.BatchV1Api);
const jobCreatedAt = new Map();
const jobCompleteAt = new Map();
const jobWatch = new k8s.ListWatch(
  '/apis/batch/v1/jobs',
  new k8s.Watch(kc),
  () => batch.listJobForAllNamespaces({ labelSelector: 'oz-worker-id=bench-kube' }),
  false,
  'oz-worker-id=bench-kube',
);
const onJob = (job) => {
  const id = job.metadata?.labels?.['oz-task-id'];
  if (!id) return;
  if (!jobCreatedAt.has(id)) jobCreatedAt.set(id, performance.now());
  if (!jobCompleteAt.has(id) && job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')) jobCompleteAt.set(id, performance.now());
};
jobWatch.on('add', onJob);
jobWatch.on('update', onJob);
jobWatch.on('error', () => setTimeout(() => void jobWatch.start(), 500));
await jobWatch.start();

// ---- the worker ---------------------------------------------------------------------------------------------
const dispatch = await startStubDispatch();
const { statusAt, connected } = dispatch;
const config = join(work, 'config.yaml');
writeFileSync(
  config,
  [
    'worker_id: bench-kube',
    'backend:',
    '  kubernetes:',
    `    namespace: ${ns}`,
    `    kubeconfig: ${workerKubeconfig}`,
    '    default_image: oz-agent-standin:local',
    '    preflight_timeout: 0s',
    '    pod_template:',
    `      nodeSelector: {${SCRIPTED_NODE_LABEL}: "true"}`,
    `      tolerations: [{key: ${SCRIPTED_NODE_LABEL}, operator: Exists, effect: NoSchedule}]`,
    '',
  ].join('\n'),
);
// As the Deployment runs it: under its container's memory limit (Node sizes V8's heap from it).
const cgroup = deploymentMemoryCgroup(`oz-bench-kube-${stamp}`);
const worker = spawn(
  ...cgroup.wrap(process.execPath, [join(ROOT, 'bin/oz-worker.js'), '--config-file', config, '--web-socket-url', dispatch.url, '--log-level', 'warn']),
  {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, WARP_API_KEY: 'bench-key', OZ_WORKER_STATE_DIR: work },
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
// Warnings and errors only (--log-level warn); a worker that stops at start-up says why here.
worker.stdout.on('data', (chunk) => process.stderr.write(chunk));
workerProcess = worker;
await Promise.race([
  connected,
  new Promise((_, reject) => worker.on('exit', (code) => reject(new Error(`bench:kube: the worker exited with ${code} before connecting`)))),
]);
await sleep(2000);
const freshRss = rssKiB(worker.pid);
if (WARMUP > 0) {
  const warm = Array.from({ length: WARMUP }, (_, i) => `warmup-${String(i).padStart(5, '0')}`);
  for (const id of warm) dispatch.assign(id);
  await waitFor(() => node.runningCount >= WARMUP, `${WARMUP} warm-up pods running`);
  node.finish(0);
  await waitFor(() => warm.every((id) => statusAt.has(id)), `${WARMUP} warm-up statuses`);
  await waitFor(async () => (await batch.listNamespacedJob({ namespace: ns })).items.length === 0, 'the warm-up Jobs to be deleted');
  for (const id of warm) statusAt.delete(id);
  await sleep(2000);
}
const idleRss = rssKiB(worker.pid);
const before = await metrics();
const cpuBefore = cpuMs(worker.pid);

// ---- 1,000 tasks at once --------------------------------------------------------------------------------------
const ids = Array.from({ length: TASKS }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
const assignedAt = new Map();
const started = performance.now();
for (const id of ids) {
  assignedAt.set(id, performance.now());
  dispatch.assign(id);
}
await waitFor(() => jobCreatedAt.size >= TASKS, `${TASKS} Jobs`);
const allCreatedMs = performance.now() - started;
await waitFor(() => node.runningCount >= TASKS, `${TASKS} pods running on the scripted node`);
const allRunningMs = performance.now() - started;
await sleep(3000);
const peakRss = rssKiB(worker.pid);
const peak = await metrics();
const watchesOf = (samples, resource) => sum(samples, 'apiserver_longrunning_requests', { verb: 'WATCH', resource, scope: 'namespace' });
const watches = { jobs: watchesOf(peak, 'jobs'), pods: watchesOf(peak, 'pods') };

node.finish(0);
await waitFor(() => statusAt.size >= TASKS, `${TASKS} statuses`);
const allDoneMs = performance.now() - started;
// Completed Jobs are deleted by the worker; let those requests land before counting.
await waitFor(async () => (await batch.listNamespacedJob({ namespace: ns })).items.length === 0, 'the Jobs to be deleted');
await sleep(1000);
const cpuAfter = cpuMs(worker.pid);
const after = await metrics();

// ---- figures -----------------------------------------------------------------------------------------------------
const flowRequests =
  sum(after, 'apiserver_flowcontrol_dispatched_requests_total', { flow_schema: flow }) -
  sum(before, 'apiserver_flowcontrol_dispatched_requests_total', { flow_schema: flow });
const byVerb = new Map();
for (const s of after) {
  if (s.name !== 'apiserver_request_total' || !['jobs', 'pods', 'events'].includes(s.labels.resource) || s.labels.scope !== 'namespace') continue;
  const key = `${s.labels.verb} ${s.labels.resource}${s.labels.subresource ? `/${s.labels.subresource}` : ''}`;
  const was = before.find((b) => b.name === s.name && JSON.stringify(b.labels) === JSON.stringify(s.labels))?.value ?? 0;
  byVerb.set(key, (byVerb.get(key) ?? 0) + s.value - was);
}
const createLatency = ids.map((id) => jobCreatedAt.get(id) - assignedAt.get(id));
const statusLatency = ids.filter((id) => jobCompleteAt.has(id)).map((id) => statusAt.get(id).at - jobCompleteAt.get(id));
const failedStatuses = ids.filter((id) => statusAt.get(id)?.type !== 'task_completed').length;
const ms = (v) => `${v.toFixed(0)} ms`;
const perTaskRssKiB = (peakRss - idleRss) / TASKS;
const requestsPerTask = flowRequests / TASKS;
const p99Status = percentile(statusLatency, 99);

console.log(`\nbench:kube — ${TASKS} concurrent tasks, Kubernetes ${env.OZ_KUBE_VERSION} control plane (real), pods on a scripted node`);
console.log(cgroup.said);
console.log(`all Jobs created ${ms(allCreatedMs)}, all pods Running ${ms(allRunningMs)}, all statuses ${ms(allDoneMs)} after the first assignment`);
console.log(`| metric | value | target |`);
console.log(`|---|---|---|`);
console.log(
  `| API requests per task (worker's flow, incl. create and delete) | ${requestsPerTask.toFixed(2)} | ≤ 3 ${requestsPerTask <= 3 ? '' : '**not met**'} |`,
);
console.log(
  `| open watches (namespace-scoped jobs + pods) with ${TASKS} running | ${watches.jobs} + ${watches.pods} | 2 ${watches.jobs + watches.pods === 2 ? '' : '**not met**'} |`,
);
console.log(
  `| worker RSS idle${WARMUP > 0 ? ` after ${WARMUP} warm-up tasks` : ''} → ${TASKS} running | ${(idleRss / 1024).toFixed(1)} → ${(peakRss / 1024).toFixed(1)} MiB (${perTaskRssKiB.toFixed(1)} KiB per task) | ≤ 50 KiB per task ${perTaskRssKiB <= 50 ? '' : '**not met**'} |`,
);
if (WARMUP > 0)
  console.log(
    `| worker RSS from its start (incl. the warm-up) → ${TASKS} running | ${(freshRss / 1024).toFixed(1)} → ${(peakRss / 1024).toFixed(1)} MiB (${((peakRss - freshRss) / TASKS).toFixed(1)} KiB per task) | |`,
  );
console.log(`| worker CPU per task | ${((cpuAfter - cpuBefore) / TASKS).toFixed(2)} ms | |`);
console.log(`| assignment → Job created p50 / p99 | ${ms(percentile(createLatency, 50))} / ${ms(percentile(createLatency, 99))} | |`);
console.log(
  `| Job condition → status received p50 / p99 | ${ms(percentile(statusLatency, 50))} / ${ms(p99Status)} | p99 ≤ 2 s ${p99Status <= 2000 ? '' : '**not met**'} |`,
);
console.log(`\napiserver_request_total, namespace-scoped jobs/pods/events, during the run (all clients; the worker's are create/delete jobs):`);
for (const [key, value] of [...byVerb].filter(([, v]) => v > 0).sort())
  console.log(`  ${key.padEnd(28)} ${String(value).padStart(7)}  (${(value / TASKS).toFixed(2)} per task)`);
if (failedStatuses > 0) console.log(`\n${failedStatuses} tasks did not report task_completed`);
if (statusLatency.length < TASKS) console.log(`\n${TASKS - statusLatency.length} Job conditions were not seen by the bench's watch`);

// ---- tear-down ------------------------------------------------------------------------------------------------------
worker.kill('SIGTERM');
const killLater = setTimeout(() => worker.kill('SIGKILL'), 30_000);
await new Promise((r) => worker.on('exit', r));
clearTimeout(killLater);
cgroup.remove();
await jobWatch.stop();
await node.stop();
dispatch.close();
await kubectl(['delete', 'flowschema', flow, '--wait=false']).catch(() => undefined);
await kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
rmSync(work, { recursive: true, force: true });
const missed = requestsPerTask > 3 || watches.jobs + watches.pods !== 2 || perTaskRssKiB > 50 || p99Status > 2000 || failedStatuses > 0;
// Sockets of the client library may linger; everything is torn down by now.
process.exit(missed ? 1 : 0);
