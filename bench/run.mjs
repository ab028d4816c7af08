// `npm run bench`: oz-worker (direct backend, /bin/true as the agent) against a
// floor worker, both driven by the same in-process dispatch server on loopback.
// Prints claim latency, assignment-to-completion, a 500-task burst, idle RSS and
// start-up time, with the ratio to the floor and the target for each; then the
// local dispatch server with a long queue (`oz-worker server` as a child process).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';

const ROOT = resolve(import.meta.dirname, '..');
const AGENT = '/bin/true';
const SEQUENTIAL = Number(process.env.BENCH_SEQUENTIAL ?? 200);
const BURST = Number(process.env.BENCH_BURST ?? 500);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

async function startServer() {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const state = { socket: undefined, onMessage: () => {}, onConnect: () => {} };
  wss.on('connection', (ws) => {
    state.socket = ws;
    ws.on('message', (data) => state.onMessage(JSON.parse(data.toString()), performance.now()));
    state.onConnect(performance.now());
  });
  return {
    state,
    url: `ws://127.0.0.1:${http.address().port}/ws`,
    close: () => {
      wss.close();
      http.close();
    },
  };
}

function assignment(id) {
  return JSON.stringify({
    type: 'task_assignment',
    data: { task_id: id, execution_id: `e-${id}`, task: { id, title: 'bench', owner: { Type: 'TEAM', Id: 1 } } },
  });
}

async function measure(name, launch) {
  const server = await startServer();
  const connected = new Promise((r) => (server.state.onConnect = r));
  const t0 = performance.now();
  const child = launch(server.url);
  const startupMs = (await connected) - t0;

  const waiters = new Map();
  server.state.onMessage = (msg, at) => {
    const key = `${msg.type}:${msg.data.task_id}`;
    waiters.get(key)?.(at);
  };
  const when = (type, id) => new Promise((r) => waiters.set(`${type}:${id}`, r));

  // warm-up
  for (let i = 0; i < 20; i++) {
    const done = when('task_completed', `w${i}`);
    server.state.socket.send(assignment(`w${i}`));
    await done;
  }
  await new Promise((r) => setTimeout(r, 1000));
  const idleRss = rssKiB(child.pid);

  const claim = [];
  const complete = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const id = `s${i}`;
    const claimed = when('task_claimed', id);
    const done = when('task_completed', id);
    const sent = performance.now();
    server.state.socket.send(assignment(id));
    claim.push((await claimed) - sent);
    complete.push((await done) - sent);
  }

  const burstStart = performance.now();
  const all = [];
  for (let i = 0; i < BURST; i++) {
    all.push(when('task_completed', `b${i}`));
    server.state.socket.send(assignment(`b${i}`));
  }
  await Promise.all(all);
  const burstMs = performance.now() - burstStart;

  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  server.close();
  return {
    name,
    startupMs,
    claimP50: percentile(claim, 50),
    claimP99: percentile(claim, 99),
    taskP50: percentile(complete, 50),
    burstMs,
    idleRssMiB: idleRss / 1024,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'oz-bench-'));
const config = join(dir, 'config.yaml');
writeFileSync(config, `worker_id: bench\nbackend:\n  direct:\n    oz_path: ${AGENT}\n    workspace_root: ${join(dir, 'ws')}\n`);

const launchWorker = (url) =>
  spawn(process.execPath, [join(ROOT, 'bin/oz-worker.js'), '--config-file', config, '--web-socket-url', url, '--log-level', 'warn'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, WARP_API_KEY: 'bench-key' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
const launchFloor = (url) => spawn(process.execPath, [join(ROOT, 'bench/floor-worker.mjs'), url, AGENT], { stdio: ['ignore', 'ignore', 'inherit'] });

// Rounds alternate which side goes first, and each figure is the median over
// the rounds, so a noisy moment on a shared machine does not decide a ratio.
const runs = { worker: [], floor: [] };
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? ['floor', 'worker'] : ['worker', 'floor'];
  for (const side of order) runs[side].push(await measure(side, side === 'worker' ? launchWorker : launchFloor));
}
const medianOf = (results) =>
  Object.fromEntries(
    Object.keys(results[0])
      .filter((k) => k !== 'name')
      .map((k) => [
        k,
        percentile(
          results.map((r) => r[k]),
          50,
        ),
      ]),
  );
const worker = medianOf(runs.worker);
const floor = medianOf(runs.floor);
rmSync(dir, { recursive: true, force: true });

const rows = [
  ['claim latency p50 (ms)', 'claimP50', 1.5],
  ['claim latency p99 (ms)', 'claimP99', undefined],
  ['assignment→completion p50 (ms)', 'taskP50', 1.5],
  [`burst of ${BURST} tasks (ms)`, 'burstMs', 1.5],
  ['idle RSS (MiB)', 'idleRssMiB', 1.6],
  ['start-up to connected (ms)', 'startupMs', 2],
];
console.log(`node ${process.version}, ${SEQUENTIAL} sequential tasks, agent ${AGENT}, median of ${ROUNDS} alternating rounds\n`);
console.log(`${'metric'.padEnd(34) + 'oz-worker'.padStart(12) + 'floor'.padStart(12) + 'ratio'.padStart(9) + 'target'.padStart(9)}  ok`);
let failed = 0;
for (const [label, key, target] of rows) {
  const ratio = worker[key] / floor[key];
  const ok = target === undefined || ratio <= target;
  if (!ok) failed++;
  console.log(
    label.padEnd(34) +
      worker[key].toFixed(1).padStart(12) +
      floor[key].toFixed(1).padStart(12) +
      ratio.toFixed(2).padStart(9) +
      (target === undefined ? '—' : `≤ ${target}`).padStart(9) +
      `  ${target === undefined ? '' : ok ? 'yes' : 'NO'}`,
  );
}
process.exitCode = failed ? 1 : 0;

// ---- Kubernetes: API traffic per task and watch connections with many tasks running ----
const K8S_TASKS = Number(process.env.BENCH_K8S_TASKS ?? 200);
async function kubernetesFigures() {
  const { FakeKubeApi } = await import('../test/support/fake-kube-api.ts');
  const api = await FakeKubeApi.start();
  api.defaultScenario = 'hang';
  const kdir = mkdtempSync(join(tmpdir(), 'oz-bench-k8s-'));
  const kconfig = join(kdir, 'config.yaml');
  writeFileSync(
    kconfig,
    `worker_id: bench-k8s\nbackend:\n  kubernetes:\n    namespace: agents\n    kubeconfig: ${api.writeKubeconfig(kdir)}\n    preflight_timeout: 0s\n`,
  );
  const server = await startServer();
  const connected = new Promise((r) => (server.state.onConnect = r));
  const child = spawn(process.execPath, [join(ROOT, 'bin/oz-worker.js'), '--config-file', kconfig, '--web-socket-url', server.url, '--log-level', 'warn'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, WARP_API_KEY: 'bench-key' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await connected;
  const done = new Set();
  let allDone;
  const finished = new Promise((r) => (allDone = r));
  server.state.onMessage = (msg) => {
    if (msg.type === 'task_completed' || msg.type === 'task_failed') {
      done.add(msg.data.task_id);
      if (done.size === K8S_TASKS) allDone();
    }
  };
  const before = api.requests.length;
  const ids = Array.from({ length: K8S_TASKS }, (_, i) => `k${i}`);
  for (const id of ids) server.state.socket.send(assignment(id));
  while (api.created.length < K8S_TASKS) await new Promise((r) => setTimeout(r, 20));
  while (api.pods().length < K8S_TASKS) await new Promise((r) => setTimeout(r, 20));
  const watchesAtPeak = api.openWatches;
  for (const job of api.jobs()) api.setJobCondition(job.metadata.name, 'Complete');
  await finished;
  await new Promise((r) => setTimeout(r, 200));
  const requests = api.requests.slice(before);
  const writes = requests.filter((r) => r.method !== 'GET').length;
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  server.close();
  await api.close();
  rmSync(kdir, { recursive: true, force: true });
  return { writesPerTask: writes / K8S_TASKS, requestsPerTask: requests.length / K8S_TASKS, watchesAtPeak };
}

const k8s = await kubernetesFigures();
console.log(`\nkubernetes backend, ${K8S_TASKS} concurrent tasks against the fake API server`);
console.log(`API writes per task                 ${k8s.writesPerTask.toFixed(2).padStart(8)}   target ≤ 3   ${k8s.writesPerTask <= 3 ? 'yes' : 'NO'}`);
console.log(`API requests per task (all)         ${k8s.requestsPerTask.toFixed(2).padStart(8)}`);
console.log(
  `open watch connections at peak      ${String(k8s.watchesAtPeak).padStart(8)}   target: independent of task count (2)   ${k8s.watchesAtPeak <= 2 ? 'yes' : 'NO'}`,
);
if (k8s.writesPerTask > 3 || k8s.watchesAtPeak > 2) process.exitCode = 1;

// ---- Direct backend: worker memory with many agents running at once ----
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 1000);
async function concurrentFigures() {
  const cdir = mkdtempSync(join(tmpdir(), 'oz-bench-conc-'));
  const agent = join(cdir, 'agent.sh');
  writeFileSync(agent, '#!/bin/sh\nexec sleep 6\n', { mode: 0o755 });
  const cconfig = join(cdir, 'config.yaml');
  writeFileSync(cconfig, `worker_id: bench-conc\nbackend:\n  direct:\n    oz_path: ${agent}\n    workspace_root: ${join(cdir, 'ws')}\n`);
  const server = await startServer();
  const connected = new Promise((r) => (server.state.onConnect = r));
  const child = spawn(process.execPath, [join(ROOT, 'bin/oz-worker.js'), '--config-file', cconfig, '--web-socket-url', server.url, '--log-level', 'warn'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, WARP_API_KEY: 'bench-key', OZ_WORKER_STATE_DIR: cdir },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await connected;
  await new Promise((r) => setTimeout(r, 1000));
  const idle = rssKiB(child.pid);
  const claimed = new Set();
  const done = new Set();
  server.state.onMessage = (msg) => {
    if (msg.type === 'task_claimed') claimed.add(msg.data.task_id);
    if (msg.type === 'task_completed' || msg.type === 'task_failed') done.add(msg.data.task_id);
  };
  for (let i = 0; i < CONCURRENT; i++) server.state.socket.send(assignment(`c${i}`));
  while (claimed.size < CONCURRENT) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 2000));
  const peak = rssKiB(child.pid);
  while (done.size < CONCURRENT) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  server.close();
  rmSync(cdir, { recursive: true, force: true });
  return { idleMiB: idle / 1024, peakMiB: peak / 1024, perTaskKiB: (peak - idle) / CONCURRENT };
}

const concurrent = await concurrentFigures();
console.log(`\ndirect backend, ${CONCURRENT} agents running at once`);
console.log(`worker RSS idle → with ${CONCURRENT} running   ${concurrent.idleMiB.toFixed(1)} → ${concurrent.peakMiB.toFixed(1)} MiB`);
console.log(`worker RSS per running task         ${concurrent.perTaskKiB.toFixed(1).padStart(8)} KiB`);

// ---- Local dispatch server: the work one request causes with a long queue ----
const QUEUED = Number(process.env.BENCH_QUEUED ?? 1000);
async function serverQueueFigures() {
  const sdir = mkdtempSync(join(tmpdir(), 'oz-bench-server-'));
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/oz-worker.js'),
      'server',
      '--listen',
      '127.0.0.1:0',
      '--state-dir',
      sdir,
      '--log-level',
      'warn',
      '--max-queued-per-principal',
      String(QUEUED + 10),
    ],
    { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const url = await new Promise((resolveUrl, reject) => {
    let text = '';
    child.stderr.on('data', (d) => {
      text += d.toString();
      const found = /listening on (http:\/\/\S+)/.exec(text);
      if (found) resolveUrl(found[1]);
    });
    child.once('exit', () => reject(new Error(`oz-worker server exited: ${text}`)));
  });
  const adminKey = readFileSync(join(sdir, 'admin.key'), 'utf8').trim();
  const api = async (method, path, key, body) => {
    const response = await fetch(url + path, {
      method,
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return response.json();
  };
  const user = await api('POST', '/api/v1/users', adminKey, { name: 'bench' });
  const { key } = await api('POST', '/api/v1/keys', adminKey, { user_id: user.id });
  // Another user's worker stays connected: every queue pass has a candidate, none of this queue is its.
  const other = await api('POST', '/api/v1/users', adminKey, { name: 'other' });
  const { key: otherKey } = await api('POST', '/api/v1/keys', adminKey, { user_id: other.id });
  const bystander = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/selfhosted/worker/ws?worker_id=bystander`, {
    headers: { Authorization: `Bearer ${otherKey}` },
  });
  await new Promise((r, reject) => {
    bystander.once('open', r);
    bystander.once('error', reject);
  });
  const prompt = 'x'.repeat(99_000); // just under the 100,000-character limit
  const times = [];
  for (let i = 0; i < QUEUED; i++) {
    const started = performance.now();
    const task = await api('POST', '/api/v1/tasks', key, { prompt });
    if (task.state !== 'queued') throw new Error(`submission refused: ${JSON.stringify(task)}`);
    times.push(performance.now() - started);
  }
  // A few retry passes over the full queue.
  await new Promise((r) => setTimeout(r, 5000));
  const rss = rssKiB(child.pid);
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/selfhosted/worker/ws?worker_id=bench`, { headers: { Authorization: `Bearer ${key}` } });
  const requested = performance.now();
  let firstAssignmentMs;
  let sent = 0;
  socket.on('message', () => {
    sent++;
    firstAssignmentMs ??= performance.now() - requested;
  });
  await new Promise((r, reject) => {
    socket.once('open', r);
    socket.once('error', reject);
  });
  await new Promise((r) => setTimeout(r, 1000));
  socket.close();
  bystander.close();
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  rmSync(sdir, { recursive: true, force: true });
  return { emptyP50: percentile(times.slice(0, 100), 50), fullP50: percentile(times.slice(-100), 50), rssMiB: rss / 1024, firstAssignmentMs, sent };
}

const queue = await serverQueueFigures();
const queueOk = {
  submit: queue.fullP50 <= queue.emptyP50 * 1.5 + 2,
  rss: queue.rssMiB <= 200,
  connect: queue.firstAssignmentMs !== undefined && queue.firstAssignmentMs <= 250,
  sent: queue.sent <= 8,
};
console.log(`\nlocal server, ${QUEUED} queued tasks of 99 KB from one user, another user's worker connected`);
console.log(
  `submit p50, first 100 → last 100     ${queue.emptyP50.toFixed(1)} → ${queue.fullP50.toFixed(1)} ms   target ≤ 1.5× (+2 ms)   ${queueOk.submit ? 'yes' : 'NO'}`,
);
console.log(`server RSS with the queue full       ${queue.rssMiB.toFixed(1).padStart(8)} MiB   target ≤ 200   ${queueOk.rss ? 'yes' : 'NO'}`);
console.log(
  `worker upgrade → first assignment    ${(queue.firstAssignmentMs ?? NaN).toFixed(1).padStart(8)} ms    target ≤ 250   ${queueOk.connect ? 'yes' : 'NO'}`,
);
console.log(`assignments sent in its first second ${String(queue.sent).padStart(8)}       target ≤ 8 (unclaimed)   ${queueOk.sent ? 'yes' : 'NO'}`);
if (!Object.values(queueOk).every(Boolean)) process.exitCode = 1;
