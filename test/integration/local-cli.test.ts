// The `local`, `server` and `task` commands through the real bin, as a user runs them.
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startConnectProxy } from '../support/connect-proxy.js';
import { ProbeWorker, startLocalServer, until, type LocalServerHarness } from '../support/local-server.js';
import { BIN, REPO_ROOT, tempDir } from '../support/worker-process.js';

/** PATH with node but certainly no `oz`: what a fresh machine looks like. */
const FRESH_PATH = `${dirname(process.execPath)}:/usr/bin:/bin`;

function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: FRESH_PATH, HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`oz-worker ${args.join(' ')} did not finish; output:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let h: LocalServerHarness | undefined;
const cleanups: (() => void)[] = [];
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe('oz-worker local', () => {
  it('on a fresh machine runs the demo task end to end with the stand-in agent, and again on a second start', async () => {
    const dir = tempDir('local');
    cleanups.push(dir.cleanup);
    const args = ['local', '--demo', '--once', '--listen', '127.0.0.1:0', '--state-dir', dir.path];
    const first = await cli(args);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toContain('STAND-IN agent');
    expect(first.stdout).toContain('Created demo user "demo"');
    expect(first.stdout).toMatch(/claimed\s+worker local-team-worker claimed the task/);
    expect(first.stdout).toContain('Demo task completed.');
    // The stand-in printed the argv the worker built: team-owned, so team sharing.
    expect(first.stdout).toContain('echo-agent: command line: oz agent run --share team:edit --task-id');
    // The worker's key travels in its environment, never in the output.
    const settings = JSON.parse(await (await import('node:fs/promises')).readFile(`${dir.path}/local.json`, 'utf8')) as {
      worker_key: string;
      user_key: string;
    };
    expect(first.stdout + first.stderr).not.toContain(settings.worker_key);

    const second = await cli(args);
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toContain('Using demo user "demo"');
    const again = JSON.parse(await (await import('node:fs/promises')).readFile(`${dir.path}/local.json`, 'utf8')) as { worker_key: string };
    expect(again.worker_key).toBe(settings.worker_key);
  });

  it('refuses a non-loopback address without --allow-remote (usage error)', async () => {
    const result = await cli(['server', '--listen', '0.0.0.0:0', '--state-dir', '/nonexistent-oz-state']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^oz-worker: error: refusing to listen on 0\.0\.0\.0.*--allow-remote/);
  });
});

describe('oz-worker task', () => {
  it('submits and watches a task to completion, lists and shows it', async () => {
    h = await startLocalServer();
    const user = await h.createUser('cli-user');
    const team = await h.createTeam('cli-team', { members: [user.id], defaultAgent: { model_id: 'm' } });
    h.startWorker(team.key);
    const auth = ['--server', h.server.httpUrl, '--api-key', user.key];

    const submitted = await cli(['task', 'submit', 'fix', 'the', 'build', '--team', String(team.id), '--watch', ...auth]);
    expect(submitted.code, submitted.stdout + submitted.stderr).toBe(0);
    expect(submitted.stdout).toMatch(/^submitted task ([0-9a-f-]{36}) \(TEAM \d+\)/);
    expect(submitted.stdout).toMatch(/assigned\s+sent to worker worker-1/);
    expect(submitted.stdout).toMatch(/task completed: Task completed successfully/);
    const id = /submitted task ([0-9a-f-]{36})/.exec(submitted.stdout)![1]!;

    const listed = await cli(['task', 'list', '--json', ...auth]);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ id, state: 'completed', prompt: 'fix the build' })]);
    const shown = await cli(['task', 'show', id, ...auth]);
    expect(shown.stdout).toMatch(/state\s+completed/);
    expect(shown.stdout).toMatch(/worker\s+worker-1/);
  });

  it("shows a failure's details in a few lines in task watch and task show", async () => {
    h = await startLocalServer();
    const team = await h.createTeam('k8s-team', { defaultAgent: { model_id: 'm' } });
    const worker = await ProbeWorker.connect(h.server.webSocketUrl, team.key, 'k8s-worker');
    cleanups.push(() => void worker.close());
    const auth = ['--server', h.server.httpUrl, '--api-key', team.key];
    const task = await h.as(team.key).submitTask({ prompt: 'use too much memory' });
    await until(() => worker.received(task.id), 5_000, 'the assignment');
    worker.send('task_claimed', { task_id: task.id, worker_id: 'k8s-worker' });
    worker.send('task_failed', {
      task_id: task.id,
      execution_id: worker.assignments[0]!.execution_id,
      message: 'Failed to execute task: container task exited with code 137 (SIGKILL)',
      failure_reason: 'container_oom',
      exit_code: 137,
      failure_details: {
        kubernetes: {
          schema_version: 1,
          observation_source: 'pod_watch',
          observed_at: '2026-11-22T12:00:03.000Z',
          pod: { name: 'oz-task-x-exec-y-x7k2p', uid: 'u', phase: 'Failed', conditions: [{ type: 'Ready', status: 'False', reason: 'PodFailed' }] },
          container: { kind: 'regular', name: 'task', state: 'terminated', termination_reason: 'OOMKilled', raw_exit_code: 137, normalized_exit_code: 137 },
          events: [{ type: 'Warning', reason: 'BackOff', count: 2 }],
        },
      },
    });
    const expected = [
      'kubernetes, seen by pod_watch at 12:00:03',
      'pod oz-task-x-exec-y-x7k2p: Failed; Ready=False (PodFailed)',
      'container task (regular): terminated OOMKilled, exit 137 (signal 9)',
      'events: 2× Warning BackOff',
    ];
    const watched = await cli(['task', 'watch', task.id, ...auth]);
    expect(watched.code).toBe(1);
    const tail = watched.stdout.trimEnd().split('\n').slice(-5);
    expect(tail[0]).toMatch(/^task failed \(exit code 137\): Failed to execute task: container task exited/);
    expect(tail.slice(1)).toEqual(expected.map((line) => `  ${line}`));
    const shown = await cli(['task', 'show', task.id, ...auth]);
    const lines = shown.stdout.trimEnd().split('\n');
    const at = lines.findIndex((line) => line.startsWith('failure details'));
    expect(lines.slice(at, at + 4)).toEqual([`failure details ${expected[0]}`, ...expected.slice(1).map((line) => `${' '.repeat(16)}${line}`)]);
    // --json carries the details as the server keeps them.
    const json = JSON.parse((await cli(['task', 'show', task.id, '--json', ...auth])).stdout) as { failure_details: { kubernetes: { container: unknown } } };
    expect(json.failure_details.kubernetes.container).toMatchObject({ termination_reason: 'OOMKilled' });
  });

  it('reaches the server through HTTP_PROXY, and directly when NO_PROXY names it', async () => {
    h = await startLocalServer();
    const user = await h.createUser('proxy-user');
    const proxy = await startConnectProxy();
    cleanups.push(() => void proxy.close());
    const auth = ['--server', h.server.httpUrl, '--api-key', user.key];
    const server = new URL(h.server.httpUrl).host;

    const proxied = await cli(['task', 'list', '--json', ...auth], { HTTP_PROXY: proxy.url });
    expect(proxied.code, proxied.stderr).toBe(0);
    expect(JSON.parse(proxied.stdout)).toEqual([]);
    expect(proxy.tunnels).toEqual([server]);

    const direct = await cli(['task', 'list', '--json', ...auth], { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' });
    expect(direct.code, direct.stderr).toBe(0);
    expect(proxy.tunnels).toEqual([server]);
  });

  it('refuses an empty or whitespace-only prompt before sending it, and names --agent-config for a team without a default', async () => {
    h = await startLocalServer();
    const user = await h.createUser('p');
    const team = await h.createTeam('bare', { members: [user.id] });
    const auth = ['--server', h.server.httpUrl, '--api-key', user.key];
    for (const prompt of ['', '   ', ' \t\n ']) {
      const refused = await cli(['task', 'submit', prompt, ...auth]);
      expect(refused.code, JSON.stringify(prompt)).toBe(2);
      expect(refused.stderr).toBe('oz-worker: error: the prompt is empty: say what the agent should do, e.g. npx oz-worker task submit "fix the flaky test"\n');
    }
    expect((await h.as(user.key).listTasks()).tasks).toEqual([]);

    const noAgent = await cli(['task', 'submit', 'do it', '--team', String(team.id), ...auth]);
    expect(noAgent.code).toBe(1);
    expect(noAgent.stderr).toBe(
      `oz-worker: error: team ${team.id} (bare) has no default agent configuration: pass one with --agent-config '{"model_id":"auto"}' (or --agent-config @file.json), or give the team a default with \`npx oz-worker admin default-agent set ${team.id} '{"model_id":"auto"}'\`\n`,
    );
    const withAgent = await cli(['task', 'submit', 'do it', '--team', String(team.id), '--agent-config', '{"model_id":"auto"}', ...auth]);
    expect(withAgent.code, withAgent.stderr).toBe(0);
  });

  it('lists tasks under a header with an age column', async () => {
    h = await startLocalServer();
    const user = await h.createUser('l');
    const auth = ['--server', h.server.httpUrl, '--api-key', user.key];
    const empty = await cli(['task', 'list', ...auth]);
    expect(empty.stdout).toBe('no tasks\n');
    const first = await h.as(user.key).submitTask({ prompt: 'first task' });
    const second = await h.as(user.key).submitTask({ prompt: 'a second\ntask' });
    const listed = await cli(['task', 'list', ...auth]);
    expect(listed.code, listed.stderr).toBe(0);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^ID +STATE +OWNER +AGE +TITLE$/);
    const rows = [
      new RegExp(`^${first.id}  queued  USER ${user.id}  \\d+s +first task$`),
      new RegExp(`^${second.id}  queued  USER ${user.id}  \\d+s +a second task$`),
    ];
    for (const row of rows) expect(lines.filter((line) => row.test(line))).toHaveLength(1);
    // Every column starts where its header does.
    for (const header of ['STATE', 'OWNER', 'AGE', 'TITLE']) {
      for (const line of lines.slice(1)) expect(line[lines[0]!.indexOf(header) - 1]).toBe(' ');
    }
    expect(new Set(lines.map((line) => line.search(/ (first|a second|TITLE)/)))).toHaveProperty('size', 1);
  });

  it('cancels a queued task, and reports refusals and missing servers as one-line errors', async () => {
    h = await startLocalServer();
    const user = await h.createUser('u');
    const stranger = await h.createUser('s');
    const auth = ['--server', h.server.httpUrl, '--api-key', user.key];
    const submitted = await cli(['task', 'submit', 'nobody runs this', '--json', ...auth]);
    const task = JSON.parse(submitted.stdout) as { id: string };
    const cancelled = await cli(['task', 'cancel', task.id, ...auth]);
    expect(cancelled.stdout).toContain(`task ${task.id} cancelled`);
    const watched = await cli(['task', 'watch', task.id, ...auth]);
    expect(watched.code).toBe(1);
    expect(watched.stdout).toMatch(/task cancelled/);

    for (const [args, id] of [
      [['task', 'show', task.id], task.id],
      [['task', 'cancel', task.id], task.id],
      [['task', 'watch', task.id], task.id],
      [['task', 'show', 'no-such-task'], 'no-such-task'],
    ] as const) {
      const refused = await cli([...args, '--server', h.server.httpUrl, '--api-key', stranger.key]);
      expect(refused.code, args.join(' ')).toBe(1);
      expect(refused.stderr).toBe(
        `oz-worker: error: no task ${id} is visible to this key: it does not exist, or another user or team owns it (\`npx oz-worker task list\` shows yours)\n`,
      );
    }

    const dir = tempDir('nostate');
    cleanups.push(dir.cleanup);
    const unconfigured = await cli(['task', 'list', '--state-dir', dir.path]);
    expect(unconfigured.code).toBe(2);
    expect(unconfigured.stderr).toMatch(/run `npx oz-worker local` first/);
    const badKey = await cli(['task', 'list', '--server', h.server.httpUrl, '--api-key', 'not-a-key']);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(
      /^oz-worker: error: the server at http:\/\/127\.0\.0\.1:\d+\/ does not accept the API key given with --api-key: pass one of its keys with --api-key <key> or OZ_API_KEY\n$/,
    );
    const badEnvKey = await cli(['task', 'list', '--server', h.server.httpUrl], { OZ_API_KEY: 'not-a-key' });
    expect(badEnvKey.stderr).toMatch(/the API key from \$OZ_API_KEY/);
    const notUrl = await cli(['task', 'list', '--server', 'not-a-url', '--api-key', 'k']);
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toMatch(
      /^oz-worker: error: invalid --server "not-a-url": not a URL; give the server's address, e\.g\. http:\/\/127\.0\.0\.1:7317\n$/,
    );
    const unreachable = await cli(['task', 'list', '--server', 'http://127.0.0.1:9', '--api-key', 'k']);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach the oz-worker server at http:\/\/127\.0\.0\.1:9/);
  });
});
