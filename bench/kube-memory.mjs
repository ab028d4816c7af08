// `node bench/kube-memory.mjs` (after `npm run build`): the worker's memory per
// running Kubernetes task, without a cluster. The real worker (bin/oz-worker.js,
// Kubernetes backend) runs against the in-repo fake API server
// (test/support/fake-kube-api.ts) and takes N tasks (BENCH_KUBE_TASKS, default
// 1,000) whose pods then run until told to finish; their pods carry a
// kubelet-like Running status. The worker runs under k8s/deployment.yaml's
// memory limit when a memory cgroup can be made (deployment-memory.mjs).
// Reports RSS as `bench:kube` reads it (no forced GC), heap and RSS after a
// forced GC (bench/memory-probe.mjs), per task, and the API requests per task.
// Figures are for comparing changes quickly; the real ones are bench:kube's
// (TLS, real object sizes, a loaded API server).
//
// BENCH_SETTLE_MS      how long the tasks run before the forced GC (default 20 s)
// BENCH_NODE_FLAGS     extra Node/V8 flags for the worker (e.g. --max-semi-space-size=16)
// BENCH_VERBOSE=1      V8 heap spaces at idle and with N running
// BENCH_HEAP_SNAPSHOT  a directory for heap snapshots (idle, N running, all done)
// BENCH_HEAP_PROFILE   a file for the sampled allocations that reached the old generation
// BENCH_SMAPS          a directory for /proc/<worker>/smaps at idle and with N running
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { deploymentMemoryCgroup } from './deployment-memory.mjs';
import { startStubDispatch } from './stub-dispatch.mjs';
import { FakeKubeApi } from '../test/support/fake-kube-api.ts';

const ROOT = resolve(import.meta.dirname, '..');
const TASKS = Number(process.env.BENCH_KUBE_TASKS ?? 1000);
const TIMEOUT_MS = 300_000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
async function waitFor(check, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`kube-memory: timed out waiting for ${what}`);
    await sleep(50);
  }
}

const work = mkdtempSync(join(tmpdir(), 'oz-kube-memory-'));
const api = await FakeKubeApi.start();
api.defaultScenario = 'hang';
const dispatch = await startStubDispatch();
const { statusAt, connected } = dispatch;
const config = join(work, 'config.yaml');
writeFileSync(
  config,
  [
    'worker_id: kube-memory',
    'backend:',
    '  kubernetes:',
    '    namespace: agents',
    `    kubeconfig: ${api.writeKubeconfig(work)}`,
    '    preflight_timeout: 0s',
    '',
  ].join('\n'),
);
const memoryFile = join(work, 'memory.json');
// As the Deployment runs it: under its container's memory limit (Node sizes V8's heap from it).
const cgroup = deploymentMemoryCgroup(`oz-kube-memory-${process.pid}`);
const worker = spawn(
  ...cgroup.wrap(process.execPath, [
    ...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean),
    '--expose-gc',
    '--import',
    join(ROOT, 'bench/memory-probe.mjs'),
    join(ROOT, 'bin/oz-worker.js'),
    '--config-file',
    config,
    '--web-socket-url',
    dispatch.url,
    '--log-level',
    'warn',
  ]),
  {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      WARP_API_KEY: 'bench-key',
      OZ_WORKER_STATE_DIR: work,
      OZ_BENCH_MEMORY_FILE: memoryFile,
      ...(process.env.BENCH_HEAP_PROFILE ? { OZ_BENCH_HEAP_PROFILE: resolve(process.env.BENCH_HEAP_PROFILE) } : {}),
      ...(process.env.BENCH_HEAP_SNAPSHOT ? { OZ_BENCH_HEAP_SNAPSHOT: resolve(process.env.BENCH_HEAP_SNAPSHOT) } : {}),
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  },
);
let connectTimer;
await Promise.race([
  connected,
  new Promise((_, reject) => worker.on('exit', (code) => reject(new Error(`the worker exited with ${code} before connecting`)))),
  new Promise((_, reject) => {
    connectTimer = setTimeout(() => {
      worker.kill('SIGKILL');
      reject(new Error('the worker did not connect within 60 s'));
    }, 60_000);
  }),
]);
clearTimeout(connectTimer);

/** Memory after a forced GC in the worker. */
async function collected() {
  if (existsSync(memoryFile)) unlinkSync(memoryFile);
  worker.kill('SIGUSR2');
  await waitFor(() => existsSync(memoryFile) && readFileSync(memoryFile, 'utf8').endsWith('}'), 'the memory probe');
  return JSON.parse(readFileSync(memoryFile, 'utf8'));
}

await sleep(1000);
const idleRss = rssKiB(worker.pid);
const smaps = (name) => process.env.BENCH_SMAPS && writeFileSync(join(process.env.BENCH_SMAPS, `${name}.smaps`), readFileSync(`/proc/${worker.pid}/smaps`));
smaps('idle');
const idle = await collected();
const requestsBefore = api.requests.filter((r) => !r.watch).length;

const ids = Array.from({ length: TASKS }, (_, i) => `mem-${String(i).padStart(5, '0')}`);
for (const id of ids) dispatch.assign(id);
await waitFor(() => api.pods().filter((p) => p.status?.phase === 'Running').length >= TASKS, `${TASKS} running pods`);
// As kubelet reports a running pod (the fake's own status is minimal).
for (const pod of api.pods()) {
  const started = new Date().toISOString();
  api.setPodStatus(pod.metadata.name, {
    phase: 'Running',
    hostIP: '10.0.0.4',
    hostIPs: [{ ip: '10.0.0.4' }],
    podIP: '10.244.0.17',
    podIPs: [{ ip: '10.244.0.17' }],
    qosClass: 'Burstable',
    startTime: started,
    conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
      type,
      status: 'True',
      lastProbeTime: null,
      lastTransitionTime: started,
    })),
    initContainerStatuses: (pod.spec.initContainers ?? []).map((c) => ({
      name: c.name,
      image: c.image,
      imageID: `docker.io/library/${c.image}@sha256:${'0'.repeat(64)}`,
      containerID: `containerd://${'1'.repeat(64)}`,
      ready: true,
      restartCount: 0,
      started: false,
      state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: started, finishedAt: started, containerID: `containerd://${'1'.repeat(64)}` } },
      lastState: {},
    })),
    containerStatuses: pod.spec.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: `docker.io/library/${c.image}@sha256:${'0'.repeat(64)}`,
      containerID: `containerd://${'2'.repeat(64)}`,
      ready: true,
      restartCount: 0,
      started: true,
      state: { running: { startedAt: started } },
      lastState: {},
    })),
  });
}
await sleep(3000);
const peakRss = rssKiB(worker.pid);
smaps('peak');
// V8's memory reducer shrinks the heap once allocation has been low for a while: the RSS of tasks that just run.
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 20_000);
await sleep(SETTLE_MS);
const settledRss = rssKiB(worker.pid);
const peak = await collected();
const jobBytes = JSON.stringify(api.jobs()[0]).length;
const podBytes = JSON.stringify(api.pods()[0]).length;

for (const job of api.jobs()) api.setJobCondition(job.metadata.name, 'Complete');
await waitFor(() => statusAt.size >= TASKS, `${TASKS} statuses`);
await waitFor(() => api.jobs().length === 0, 'the Jobs to be deleted');
const requests = api.requests.filter((r) => !r.watch).length - requestsBefore;
const failed = [...statusAt.values()].filter(({ type }) => type !== 'task_completed').length;
await sleep(500);
const after = await collected();

const kib = (bytes) => bytes / 1024;
const perTask = (a, b) => (b - a) / TASKS;
console.log(`\nkube-memory — ${TASKS} tasks running on the fake Kubernetes API (a Job ${jobBytes} B, a Pod ${podBytes} B as JSON)`);
console.log(cgroup.said);
console.log(`| measure | idle | ${TASKS} running | per task | all done |`);
console.log(`|---|---|---|---|---|`);
console.log(
  `| RSS, no forced GC (as bench:kube) | ${(idleRss / 1024).toFixed(1)} MiB | ${(peakRss / 1024).toFixed(1)} MiB | ${perTask(idleRss, peakRss).toFixed(1)} KiB | |`,
);
console.log(`| RSS ${SETTLE_MS / 1000} s later, no forced GC | | ${(settledRss / 1024).toFixed(1)} MiB | ${perTask(idleRss, settledRss).toFixed(1)} KiB | |`);
console.log(
  `| RSS after GC | ${(idle.rss / 2 ** 20).toFixed(1)} MiB | ${(peak.rss / 2 ** 20).toFixed(1)} MiB | ${kib(perTask(idle.rss, peak.rss)).toFixed(1)} KiB | ${(after.rss / 2 ** 20).toFixed(1)} MiB |`,
);
console.log(
  `| heap used after GC | ${(idle.heapUsed / 2 ** 20).toFixed(1)} MiB | ${(peak.heapUsed / 2 ** 20).toFixed(1)} MiB | ${kib(perTask(idle.heapUsed, peak.heapUsed)).toFixed(1)} KiB | ${(after.heapUsed / 2 ** 20).toFixed(1)} MiB |`,
);
console.log(
  `| external + array buffers after GC | ${(idle.external / 2 ** 20).toFixed(1)} MiB | ${(peak.external / 2 ** 20).toFixed(1)} MiB | ${kib(perTask(idle.external, peak.external)).toFixed(1)} KiB | ${(after.external / 2 ** 20).toFixed(1)} MiB |`,
);
console.log(
  `| heap used / total, no forced GC | ${(idle.before.heapUsed / 2 ** 20).toFixed(1)} / ${(idle.before.heapTotal / 2 ** 20).toFixed(1)} MiB | ${(peak.before.heapUsed / 2 ** 20).toFixed(1)} / ${(peak.before.heapTotal / 2 ** 20).toFixed(1)} MiB | ${kib(perTask(idle.before.heapTotal, peak.before.heapTotal)).toFixed(1)} KiB (total) | |`,
);
console.log(
  `| RSS 1 s after GC | ${(idle.rssLater / 2 ** 20).toFixed(1)} MiB | ${(peak.rssLater / 2 ** 20).toFixed(1)} MiB | ${kib(perTask(idle.rssLater, peak.rssLater)).toFixed(1)} KiB | ${(after.rssLater / 2 ** 20).toFixed(1)} MiB |`,
);
console.log(
  `| heap total (committed) after GC | ${(idle.heapTotal / 2 ** 20).toFixed(1)} MiB | ${(peak.heapTotal / 2 ** 20).toFixed(1)} MiB | ${kib(perTask(idle.heapTotal, peak.heapTotal)).toFixed(1)} KiB | ${(after.heapTotal / 2 ** 20).toFixed(1)} MiB |`,
);
if (process.env.BENCH_VERBOSE)
  for (const [name, s] of Object.entries(peak.before.spaces))
    console.log(
      `  no forced GC: ${name.padEnd(26)} size ${(idle.before.spaces[name].size / 2 ** 20).toFixed(1)} → ${(s.size / 2 ** 20).toFixed(1)} MiB, used ${(idle.before.spaces[name].used / 2 ** 20).toFixed(1)} → ${(s.used / 2 ** 20).toFixed(1)} MiB`,
    );
console.log(`API requests per task (not watches; create, delete and any others): ${(requests / TASKS).toFixed(2)}; open watches ${api.openWatches}`);
if (failed > 0) console.log(`${failed} tasks did not report task_completed`);
if (peak.snapshot) console.log(`heap snapshots: ${idle.snapshot}, ${peak.snapshot}`);

worker.kill('SIGTERM');
await new Promise((r) => worker.on('exit', r));
cgroup.remove();
dispatch.close();
await api.close();
rmSync(work, { recursive: true, force: true });
process.exit(failed > 0 ? 1 : 0);
