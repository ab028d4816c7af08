// `oz-worker local` and `server` as a runtime, through the real bin: both kinds
// of demo task, why a task waits, backends and --config-file, dying with the
// parent, the state-directory lock, listen addresses, and agent output.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/local/api-client.js';
import { API_KEY, startDirectWorker } from '../support/direct-worker.js';
import { assignment } from '../support/fake-dispatch-server.js';
import { FakeDockerEngine } from '../support/fake-docker-engine.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { ProbeWorker, startLocalServer, until, type LocalServerHarness } from '../support/local-server.js';
import { BIN, FAKE_OZ, REPO_ROOT, tempDir } from '../support/worker-process.js';

const FRESH_PATH = `${dirname(process.execPath)}:/usr/bin:/bin`;

/** A CLI process whose output is collected while it runs. */
class Cli {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }
  get output(): string {
    return this.stdout + this.stderr;
  }
  waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return until(() => pattern.exec(this.output) ?? undefined, timeoutMs, `${pattern} in the output of oz-worker; got:\n${this.output}`);
  }
}

const running: Cli[] = [];
function start(args: string[], env: Record<string, string> = {}): Cli {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: FRESH_PATH, HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const cli = new Cli(child);
  running.push(cli);
  return cli;
}

async function run(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = start(args, env);
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), timeoutMs);
  const code = await cli.exited;
  clearTimeout(timer);
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

/** Pids of live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const state = /State:\s+(\w)/.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1];
      if (state !== 'Z' && cmdline.includes(needle)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !/State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

let h: LocalServerHarness | undefined;
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cli of running.splice(0)) if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
  await h?.close();
  h = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function stateDir(): string {
  const dir = tempDir('local-rt');
  cleanups.push(dir.cleanup);
  return dir.path;
}

/** A direct-backend config for `local` with the recording fake agent (sleeping if asked). */
function agentConfig(dir: string, extraEnv: Record<string, string> = {}): { path: string; records: string } {
  const records = join(dir, 'records');
  mkdirSync(records, { recursive: true });
  const env = { OZ_RECORD_DIR: records, ...extraEnv };
  const path = join(dir, 'my-worker.yaml');
  writeFileSync(
    path,
    [
      'backend:',
      '  direct:',
      `    oz_path: ${FAKE_OZ}`,
      '    environment:',
      ...Object.entries(env).flatMap(([name, value]) => [`      - name: ${name}`, `        value: "${value}"`]),
    ].join('\n'),
  );
  return { path, records };
}

describe('oz-worker local: both kinds of task', () => {
  it('runs a user task and a team task in the demo; only the team task gets --share team:edit, and the watch shows the agent output', async () => {
    const dir = stateDir();
    const result = await run(['local', '--demo', '--once', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // The workers log to the same stdout (JSON lines) while both tasks run at once: read the watch lines alone.
    const watched = result.stdout
      .split('\n')
      .filter((line) => !line.startsWith('{'))
      .join('\n');
    const [user, team] = watched.split('Demo task owned by team demo-team');
    expect(user).toMatch(/Demo task owned by user demo[^\n]*\n[\s\S]*claimed\s+worker local-user-worker claimed the task/);
    expect(user).toMatch(/stdout\s+echo-agent: command line: oz agent run --task-id /);
    expect(user).not.toContain('--share team:edit');
    expect(user).toContain('Demo task completed.');
    expect(team).toMatch(/claimed\s+worker local-team-worker claimed the task/);
    expect(team).toMatch(/stdout\s+echo-agent: command line: oz agent run --share team:edit --task-id /);
    expect(team).toContain('Demo task completed.');
    // The workers' keys travel in their environment, never in the output.
    const settings = JSON.parse(readFileSync(join(dir, 'local.json'), 'utf8')) as { worker_key: string; user_worker_key: string };
    expect(result.stdout + result.stderr).not.toContain(settings.worker_key);
    expect(result.stdout + result.stderr).not.toContain(settings.user_worker_key);
  });

  it("prints Next: lines that run as printed: a no-flag task is the user's and runs; --team runs on the team worker; task logs prints the output", async () => {
    const dir = stateDir();
    const local = start(['local', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    await local.waitFor(/Press Ctrl-C/);
    expect(local.stdout).toMatch(/task submit "your prompt" --watch\s+# owned by you, user demo: no team sharing/);
    const teamLine = /task submit "your prompt" --team (\d+) --watch\s+# owned by team demo-team: the agent gets --share team:edit/.exec(local.stdout);
    expect(teamLine).not.toBeNull();

    const help = await run(['task', 'submit', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain("Submit a task, owned by you (the key's user, or its team) unless --team or --user is given");
    const mine = await run(['task', 'submit', 'fix the flaky test', '--watch', '--state-dir', dir]);
    expect(mine.code, mine.stdout + mine.stderr).toBe(0);
    expect(mine.stdout).toMatch(/^submitted task [0-9a-f-]{36} \(USER 1\)/);
    expect(mine.stdout).toMatch(/claimed\s+worker local-user-worker/);
    expect(mine.stdout).toMatch(/task completed/);

    const theirs = await run(['task', 'submit', 'triage issues', '--team', teamLine![1]!, '--watch', '--state-dir', dir]);
    expect(theirs.code, theirs.stdout + theirs.stderr).toBe(0);
    expect(theirs.stdout).toMatch(/claimed\s+worker local-team-worker/);
    const id = /submitted task ([0-9a-f-]{36})/.exec(theirs.stdout)![1]!;
    const logs = await run(['task', 'logs', id, '--state-dir', dir]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/^echo-agent \(stand-in for oz, not a real agent\) started in /);
    expect(logs.stdout).toContain('echo-agent: command line: oz agent run --share team:edit');
    expect(logs.stdout).not.toMatch(/claimed|assigned/);
    local.child.kill('SIGTERM');
    expect(await local.exited).toBe(0);
  });
});

describe('oz-worker task watch: why a task waits', () => {
  it('says within seconds that no connected worker can take the task, and why, as the workers change', async () => {
    h = await startLocalServer();
    const user = await h.createUser('waiter');
    const team = await h.createTeam('waiters', { members: [user.id], defaultAgent: { model_id: 'm' } });
    const auth = ['--server', h.server.httpUrl, '--api-key', user.key];

    const submitted = await run(['task', 'submit', 'nobody runs this yet', '--json', ...auth]);
    const task = JSON.parse(submitted.stdout) as { id: string; waiting_reason: string };
    expect(task.waiting_reason).toBe('no worker is connected to the server');
    const watch = start(['task', 'watch', task.id, ...auth]);
    await watch.waitFor(/waiting\s+no worker is connected to the server; the task stays queued/, 5_000);

    // A team worker cannot take a user's task: the reason says whose worker is missing.
    const teamProbe = await ProbeWorker.connect(h.server.webSocketUrl, team.key, 'team-probe');
    cleanups.push(() => teamProbe.close());
    await watch.waitFor(
      new RegExp(`waiting\\s+no connected worker runs the tasks of user ${user.id}: a user's tasks run on a worker connected with a key of that user`),
      5_000,
    );
    const shown = await run(['task', 'show', task.id, ...auth]);
    expect(shown.stdout).toMatch(new RegExp(`waiting\\s+no connected worker runs the tasks of user ${user.id}`));

    // A worker that may run it but says it is full.
    const userProbe = await ProbeWorker.connect(h.server.webSocketUrl, user.key, 'user-probe');
    cleanups.push(() => userProbe.close());
    await until(() => userProbe.received(task.id), 5_000, 'the assignment');
    userProbe.send('task_rejected', { task_id: task.id, reason: 'at_capacity: worker at maximum concurrency (0 tasks running)' });
    await watch.waitFor(/waiting\s+every worker that may run it is unavailable: user-probe is at capacity \(0 of 0 tasks\)/, 5_000);
    expect(watch.child.exitCode).toBeNull();

    // Team work routed to a device: not connected, then connected after its pin was archived
    // (a device without an active pin is refused at submission).
    const device = await h.admin.request<{ id: string }>('POST', '/api/v1/devices', { user_id: user.id, name: 'laptop', id: 'laptop-1' });
    const pin = await h.admin.request<{ id: number }>('POST', `/api/v1/devices/${device.id}/pins`, { team_id: team.id });
    const routed = await h.as(user.key).submitTask({ prompt: 'on my laptop', owner: { type: 'TEAM', id: team.id }, device_id: device.id });
    expect(routed.waiting_reason).toMatch(/^device laptop-1 is not connected/);
    await h.admin.request('POST', `/api/v1/pins/${pin.id}/archive`);
    const deviceProbe = await ProbeWorker.connect(h.server.webSocketUrl, user.key, 'device-probe', device.id);
    cleanups.push(() => deviceProbe.close());
    const unpinned = await until(
      async () => {
        const current = await h!.as(user.key).task(routed.id);
        return current.waiting_reason?.includes('has no active pin') ? current : undefined;
      },
      5_000,
      'the no-pin reason',
    );
    expect(unpinned.waiting_reason).toBe(`device laptop-1 has no active pin for team ${team.id}`);
    await h.admin.request('POST', `/api/v1/devices/${device.id}/pins`, { team_id: team.id });
    await until(() => deviceProbe.received(routed.id), 5_000, 'the pinned assignment');
    expect((await h.as(user.key).task(routed.id)).waiting_reason).toBeNull();
  });
});

describe('oz-worker local: backends and --config-file', () => {
  it("passes --config-file through, adds a workspace root outside the state directory, and runs the task with the file's agent and environment", async () => {
    const dir = stateDir();
    const cache = join(dir, 'cache');
    const config = agentConfig(dir, { FAKE_OZ_PRINT: 'hello from my config' });
    const result = await run(['local', '--demo', '--once', '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'state'), '--config-file', config.path], {
      XDG_CACHE_HOME: cache,
    });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).not.toContain('STAND-IN');
    expect(result.stdout).toMatch(/stdout\s+hello from my config/);
    const records = readdirSync(config.records).map((f) => JSON.parse(readFileSync(join(config.records, f), 'utf8')) as { cwd: string });
    expect(records).toHaveLength(2);
    for (const record of records) expect(dirname(dirname(record.cwd))).toBe(join(cache, 'oz-worker', 'workspaces'));
  });

  it('reports a bad --config-file with its own line number', async () => {
    const dir = stateDir();
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, 'backend:\n  direct:\n    oz_pth: /x\n');
    const result = await run(['local', '--listen', '127.0.0.1:0', '--state-dir', join(dir, 'state'), '--config-file', path]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`config file ${path}, line 3: unknown key "backend.direct.oz_pth"`));
  });

  it.each([
    ['docker', { DOCKER_HOST: 'unix:///nonexistent/docker.sock' }, /docker/i],
    ['kubernetes', { KUBECONFIG: '/nonexistent/kubeconfig' }, /kube/i],
    ['command', {}, /the command backend requires a dispatch command: set backend\.command\.dispatch_command/],
  ])("--backend %s without its engine fails with the backend's own error, not an empty config file", async (backend, env, pattern) => {
    const dir = stateDir();
    const result = await run(['local', '--backend', backend, '--listen', '127.0.0.1:0', '--state-dir', dir], env);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout + result.stderr).toMatch(pattern);
    expect(result.stdout + result.stderr).not.toMatch(/is empty/);
    expect(result.stdout + result.stderr).toMatch(/exited before it connected/);
  });

  it('runs the demo on the docker backend when the engine answers, one container per task', async () => {
    const engine = await FakeDockerEngine.start();
    cleanups.push(() => engine.close());
    const dir = stateDir();
    const result = await run(['local', '--backend', 'docker', '--demo', '--once', '--listen', '127.0.0.1:0', '--state-dir', dir], {
      DOCKER_HOST: engine.dockerHost,
    });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Starting worker "local-team-worker" for the tasks of team demo-team \(id \d+\) \(backend: docker\)/);
    expect(result.stdout.match(/Demo task completed\./g)).toHaveLength(2);
    expect(engine.calls('POST', /^\/containers\/create/)).toHaveLength(2);
  });

  it('runs the demo on the kubernetes backend of --config-file when the cluster answers, one Job per task', async () => {
    const api = await FakeKubeApi.start();
    cleanups.push(() => api.close());
    const dir = stateDir();
    const path = join(dir, 'k8s.yaml');
    writeFileSync(
      path,
      ['backend:', '  kubernetes:', '    namespace: agents', `    kubeconfig: ${api.writeKubeconfig(dir)}`, '    preflight_timeout: 0s'].join('\n'),
    );
    const result = await run(['local', '--config-file', path, '--demo', '--once', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/\(backend: kubernetes\)/);
    expect(result.stdout.match(/Demo task completed\./g)).toHaveLength(2);
    expect(api.requests.filter((r) => r.method === 'POST' && /\/jobs$/.test(r.path))).toHaveLength(2);
  });

  it('runs the command backend from local with the dispatch command of --config-file', async () => {
    const dir = stateDir();
    const dispatched = join(dir, 'dispatched');
    mkdirSync(dispatched);
    const path = join(dir, 'command.yaml');
    writeFileSync(path, `backend:\n  command:\n    dispatch_command: cat > ${dispatched}/$OZ_RUN_ID.json\n`);
    const local = start(['local', '--backend', 'command', '--config-file', path, '--listen', '127.0.0.1:0', '--state-dir', dir]);
    await local.waitFor(/Press Ctrl-C/);
    const submitted = await run(['task', 'submit', 'hand this off', '--json', '--state-dir', dir]);
    const task = JSON.parse(submitted.stdout) as { id: string };
    const payload = await until(
      () => {
        try {
          return JSON.parse(readFileSync(join(dispatched, `${task.id}.json`), 'utf8')) as Record<string, unknown>;
        } catch {
          return undefined; // not written (completely) yet
        }
      },
      15_000,
      'the dispatch command to run',
    );
    expect(payload).toMatchObject({ run_id: task.id });
    local.child.kill('SIGTERM');
    expect(await local.exited).toBe(0);
  });
});

describe('oz-worker local: the workers and agents die with it', () => {
  it.each(['SIGKILL', 'SIGTERM'] as const)('after %s of local, no worker or agent is left, and a restart reports the interrupted task', async (signal) => {
    const dir = stateDir();
    const config = agentConfig(dir, { FAKE_OZ_SLEEP_MS: '120000' });
    const local = start(['local', '--listen', '127.0.0.1:0', '--state-dir', dir, '--config-file', config.path]);
    await local.waitFor(/Press Ctrl-C/);
    const submitted = await run(['task', 'submit', 'a long task', '--json', '--state-dir', dir]);
    const task = JSON.parse(submitted.stdout) as { id: string };
    const record = await until(
      () => {
        const file = join(config.records, `${task.id}.json`);
        return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { pid: number }) : undefined;
      },
      15_000,
      'the agent to start',
    );
    expect(processesMentioning(dir).length).toBeGreaterThanOrEqual(2); // the two workers
    expect(alive(record.pid)).toBe(true);

    local.child.kill(signal);
    await local.exited;
    await until(() => !alive(record.pid) && processesMentioning(dir).length === 0, 20_000, 'the workers and the agent to exit');

    // A restarted local meets no orphan; the task the dead workers ran is reported, not left running.
    const again = start(['local', '--listen', '127.0.0.1:0', '--state-dir', dir, '--config-file', config.path]);
    await again.waitFor(/Press Ctrl-C/);
    const watched = await run(['task', 'watch', task.id, '--state-dir', dir], {}, 30_000);
    expect(watched.stdout).toMatch(/task failed/);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    expect(processesMentioning(dir)).toEqual([]);
  });

  it('a SIGTERM while it starts the workers still stops them', async () => {
    const dir = stateDir();
    const local = start(['local', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    await local.waitFor(/Starting worker "local-user-worker"/);
    local.child.kill('SIGTERM');
    await local.exited;
    await until(() => processesMentioning(dir).length === 0, 20_000, 'the workers to exit');
  });
});

describe('the state directory lock', () => {
  it("refuses a second server on the same state directory, naming the holder; a dead holder's lock is taken over", async () => {
    const dir = stateDir();
    const first = start(['server', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    const url = (await first.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
    for (const command of ['server', 'local']) {
      const second = await run([command, '--listen', '127.0.0.1:0', '--state-dir', dir]);
      expect(second.code).toBe(1);
      expect(second.stderr).toContain(`the state directory ${dir} is in use by oz-worker server (pid ${first.child.pid} at ${url}`);
      expect(second.stderr).toMatch(/stop that process, or pass another --state-dir/);
    }
    first.child.kill('SIGKILL');
    await first.exited;
    const third = start(['server', '--listen', '127.0.0.1:0', '--state-dir', dir]);
    await third.waitFor(/listening on/);
    expect(JSON.parse(readFileSync(join(dir, 'server.lock'), 'utf8'))).toMatchObject({ pid: third.child.pid, command: 'server' });
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
    expect(existsSync(join(dir, 'server.lock'))).toBe(false);
  });
});

describe('server listen addresses', () => {
  it('says when the host does not resolve', async () => {
    const result = await run(['server', '--listen', 'no-such-host.invalid:0', '--allow-remote', '--state-dir', join(stateDir(), 'new')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^oz-worker: error: cannot listen on no-such-host\.invalid: the host name does not resolve/);
  });

  it('prints a reachable worker URL for 0.0.0.0 with --allow-remote', async () => {
    const server = start(['server', '--listen', '0.0.0.0:0', '--allow-remote', '--state-dir', stateDir()]);
    const [, host] = (await server.waitFor(/--web-socket-url ws:\/\/([^:/]+):\d+\/api\/v1\/selfhosted\/worker\/ws/))!;
    expect(host).not.toBe('0.0.0.0');
    const { networkInterfaces } = await import('node:os');
    const addresses = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((info) => info.address));
    expect(addresses).toContain(host);
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  });

  it('writes nothing to a new state directory when the port is taken', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as { port: number }).port;
    const dir = join(stateDir(), 'new-state');
    for (const command of ['server', 'local']) {
      const result = await run([command, '--listen', `127.0.0.1:${port}`, '--state-dir', dir]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`port ${port} on 127.0.0.1 is in use`);
      expect(existsSync(dir)).toBe(false);
    }
  });
});

describe('the task-output extension', () => {
  it('a worker connected to a server that does not announce it (Warp) never sends task output', async () => {
    const harness = await startDirectWorker({ env: { WARP_API_KEY: API_KEY } });
    cleanups.push(() => harness.close());
    await harness.server.waitForConnection();
    harness.server.assign(assignment('task-quiet'));
    await harness.server.waitForMessage('task_completed', 'task-quiet');
    // The agent printed, and the worker logged it, but sent nothing of it.
    await harness.worker.waitForLog((line) => line.msg.startsWith('fake-oz: started with agent run --task-id task-quiet'));
    expect(harness.server.rawFrames.filter((frame) => frame.includes('task_output'))).toEqual([]);
  });

  it('keeps output only from the worker the task runs on, caps it per task, and shows it only to the owner', async () => {
    h = await startLocalServer();
    const owner = await h.createUser('owner');
    const other = await h.createUser('other');
    const ownerProbe = await ProbeWorker.connect(h.server.webSocketUrl, owner.key, 'owner-worker');
    const otherProbe = await ProbeWorker.connect(h.server.webSocketUrl, other.key, 'other-worker');
    cleanups.push(
      () => ownerProbe.close(),
      () => otherProbe.close(),
    );
    const task = await h.as(owner.key).submitTask({ prompt: 'print a lot' });
    await until(() => ownerProbe.received(task.id), 5_000, 'the assignment');
    ownerProbe.send('task_claimed', { task_id: task.id, worker_id: 'owner-worker' });
    await h.waitForTask(h.as(owner.key), task.id, ['running']);

    otherProbe.send('task_output', { task_id: task.id, lines: [{ stream: 'stdout', text: 'injected by another worker' }] });
    ownerProbe.send('task_output', { task_id: task.id, lines: [{ stream: 'stdout', text: 'x'.repeat(5000) }] }); // over the line cap: refused
    const line = 'y'.repeat(4000);
    for (let i = 0; i < 5; i++)
      ownerProbe.send('task_output', { task_id: task.id, lines: Array.from({ length: 60 }, () => ({ stream: 'stderr', text: line })) });
    ownerProbe.send('task_output', { task_id: task.id, lines: [{ stream: 'stdout', text: 'after the cap' }] });
    // The frames are handled in order: once the last one is, every earlier one was.
    ownerProbe.send('task_claimed', { task_id: task.id, worker_id: 'owner-worker' });
    let events: Awaited<ReturnType<ApiClient['events']>>['events'] = [];
    for (const deadline = Date.now() + 20_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
      ({ events } = await h.as(owner.key).events(task.id, 0, 0));
      if (events.some((e) => e.kind === 'output_truncated')) break;
    }
    const output = events.filter((e) => e.kind === 'stdout' || e.kind === 'stderr');
    expect(output.some((e) => e.detail.includes('injected'))).toBe(false);
    expect(output.some((e) => e.detail.startsWith('x'))).toBe(false);
    expect(output.every((e) => e.detail === line)).toBe(true);
    expect(output.length).toBe(Math.floor((1024 * 1024) / 4000));
    expect(events.filter((e) => e.kind === 'output_truncated')).toHaveLength(1);

    const logs = await run(['task', 'logs', task.id, '--server', h.server.httpUrl, '--api-key', other.key]);
    expect(logs.code).toBe(1);
    await expect(new ApiClient(h.server.httpUrl, other.key).events(task.id, 0, 0)).rejects.toThrow('Forbidden');
  });
});
