// `oz-worker plan` and `oz-worker doctor` through the real bin.
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY } from '../support/direct-worker.js';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { BIN, FAKE_OZ, REPO_ROOT, tempDir } from '../support/worker-process.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/assignments');

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => done({ code, stdout, stderr }));
  });
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('oz-worker plan', () => {
  it('shows the team task argv with team sharing right after `agent run`, secrets redacted', async () => {
    const { code, stdout } = await cli(['plan', '--backend', 'direct', '--json', join(FIXTURES, 'team.json')]);
    expect(code).toBe(0);
    const plan = JSON.parse(stdout);
    expect(plan).toMatchObject({ kind: 'run', taskId: 'team-task-1', owner: 'TEAM 42', teamSharing: true, backend: 'direct' });
    expect(plan.launch.args.slice(0, 4)).toEqual(['agent', 'run', '--share', 'team:edit']);
    expect(plan.launch.args[plan.launch.args.indexOf('--mcp') + 1]).toBe('[redacted]');
    expect(plan.launch.environment).toContain('GITHUB_ACCESS_TOKEN=[redacted]');
    expect(stdout).not.toContain('ghp_secret_value_123');
    expect(stdout).not.toContain('ghp_mcp_secret_value');
  });

  it.each(['direct', 'docker', 'kubernetes'])(
    "shows the worker's own environment for the shipped sample (%s backend) and redacts only what the server and -e gave",
    async (backend) => {
      const sample = join(REPO_ROOT, 'examples', 'assignment.json');
      const { code, stdout } = await cli(['plan', '--backend', backend, '-e', 'DEPLOY_TOKEN=tok-from-the-operator', sample]);
      expect(code, stdout).toBe(0);
      expect(stdout).toContain('owner TEAM 42 — team-owned: the agent gets --share team:edit');
      const shown = (name: string, value: string): RegExp =>
        new RegExp(backend === 'kubernetes' ? `name: ${name}\\n\\s+value: "?${value}"?\\n` : `${name}=${value}\\n`);
      expect(stdout).toMatch(shown('GIT_TERMINAL_PROMPT', '0'));
      expect(stdout).toMatch(shown('GH_PROMPT_DISABLED', '1'));
      expect(stdout).toMatch(shown('TASK_ID', '5d0c6f7e-2b1a-4c7e-9a55-3f2d8e1b0a42'));
      expect(stdout).toMatch(shown('WARP_API_KEY', '\\[redacted\\]'));
      expect(stdout).toMatch(shown('DEPLOY_TOKEN', '\\[redacted\\]'));
      expect(stdout).not.toContain('example-per-task-key-not-a-real-one');
      expect(stdout).not.toContain('tok-from-the-operator');
    },
  );

  it('shows the worker settings, and the OZ_ and WARP_ variables of the setup and teardown hooks', async () => {
    const dir = tempDir('plan-hooks');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'config.yaml');
    writeFileSync(
      path,
      `collect_task_logs: false\nbackend:\n  direct:\n    workspace_root: /srv/ws\n    setup_command: ./setup.sh\n    teardown_command: ./teardown.sh\n`,
    );
    const { code, stdout } = await cli(['plan', '--config-file', path, '--max-concurrent-tasks', '2', join(FIXTURES, 'team.json')]);
    expect(code, stdout).toBe(0);
    expect(stdout).toContain('Worker: at most 2 concurrent tasks; task logs not collected');
    for (const prefix of ['OZ', 'WARP']) {
      expect(stdout).toContain(`${prefix}_ENVIRONMENT_FILE=/srv/ws/team-task-1/oz-env-(random)`);
      expect(stdout).toContain(`${prefix}_RUN_ID=team-task-1`);
      expect(stdout).toContain(`${prefix}_WORKER_BACKEND=direct`);
    }
    expect(stdout).toMatch(/teardownEnvironment:\n(?:\s+- .*\n)*\s+- WARP_WORKSPACE_ROOT=\/srv\/ws\/team-task-1\n/);
  });

  it('reveals values only with --show-secrets', async () => {
    const { stdout } = await cli(['plan', '--backend', 'direct', '--show-secrets', join(FIXTURES, 'team.json')]);
    expect(stdout).toContain('GITHUB_ACCESS_TOKEN=ghp_secret_value_123');
    expect(stdout).toContain('ghp_mcp_secret_value');
  });

  it.each([
    ['user.json', 'USER 7'],
    ['ownerless.json', 'none'],
  ])('gives %s no team sharing', async (fixture, owner) => {
    const { code, stdout } = await cli(['plan', '--backend', 'direct', '--json', join(FIXTURES, fixture)]);
    expect(code).toBe(0);
    const plan = JSON.parse(stdout);
    expect(plan.owner).toBe(owner);
    expect(plan.teamSharing).toBe(false);
    expect(plan.launch.args).not.toContain('--share');
    expect(plan.launch.args.slice(0, 2)).toEqual(['agent', 'run']);
  });

  it('prints the Kubernetes Job the worker would create', async () => {
    const { code, stdout } = await cli(['plan', '--backend', 'kubernetes', join(FIXTURES, 'team.json')]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^kind: Job$/m);
    expect(stdout).toContain('name: oz-task-team-task-1-exec-exec-1');
    expect(stdout).toMatch(/- --share\n\s+- team:edit/);
    expect(stdout).not.toContain('ghp_secret_value_123');
  });

  it.each(['docker', 'kubernetes'])("keeps the server's secrets and the MCP config out of the %s plan", async (backend) => {
    const { code, stdout } = await cli(['plan', '--backend', backend, join(FIXTURES, 'team.json')]);
    expect(code).toBe(0);
    expect(stdout).toContain('[redacted]');
    expect(stdout).not.toContain('ghp_secret_value_123');
    expect(stdout).not.toContain('ghp_mcp_secret_value');
  });

  it('refuses, as the direct backend does, a task id that would leave the workspace root', async () => {
    const dir = tempDir('plan-escape');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'escape.json');
    writeFileSync(path, JSON.stringify({ task_id: 'a/../../escape', task: { id: 't' } }));
    const { code, stdout } = await cli(['plan', '--backend', 'direct', '--workspace-root', join(dir.path, 'ws'), '--json', path]);
    expect(code).toBe(1);
    expect(JSON.parse(stdout)).toMatchObject({
      kind: 'refuse',
      answer: { type: 'task_failed', data: { task_id: 'a/../../escape', failure_reason: 'workspace_setup' } },
    });
    expect(JSON.parse(stdout).answer.data.message).toMatch(/^Failed to execute task: invalid task ID for workspace path/);
  });

  it('answers an invalid assignment with the task_failed the worker would send', async () => {
    const { code, stdout } = await cli(['plan', join(FIXTURES, 'invalid.json')]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/would answer task_failed:\n\s+The worker could not run this task because its assignment was invalid \(task: /);
  });

  it('shows a device worker refusing an out-of-scope task', async () => {
    const { code, stdout } = await cli(['plan', '--backend', 'direct', '--device-owner-user-id', '8', join(FIXTURES, 'user.json')]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/would answer task_rejected:\n\s+owner_out_of_scope: the task belongs to USER 7/);
  });
});

describe('oz-worker doctor', () => {
  async function config(): Promise<string> {
    const dir = tempDir('doctor');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'config.yaml');
    writeFileSync(path, `worker_id: doc-worker\nbackend:\n  direct:\n    oz_path: ${FAKE_OZ}\n    workspace_root: ${join(dir.path, 'ws')}\n`);
    return path;
  }

  it('passes every check against a reachable server with a good key', async () => {
    const server = await FakeDispatchServer.start({ apiKey: API_KEY });
    cleanups.push(() => server.close());
    const { code, stdout } = await cli(['doctor', '--config-file', await config(), '--web-socket-url', server.url], { WARP_API_KEY: API_KEY });
    expect(stdout).toMatch(/^✔ config: valid/m);
    expect(stdout).toMatch(/^✔ dispatch server: .* accepted the API key/m);
    expect(stdout).toMatch(/^✔ oz CLI: .*fake-oz\.mjs runs/m);
    expect(stdout).toMatch(/^✔ workspace: .* is writable/m);
    expect(code).toBe(0);
    expect(server.handshakes[0]!.workerId).toBe('doc-worker-doctor');
  });

  it('says the key was refused, with the fix', async () => {
    const server = await FakeDispatchServer.start({ apiKey: 'the-right-key' });
    cleanups.push(() => server.close());
    const { code, stdout } = await cli(['doctor', '--config-file', await config(), '--web-socket-url', server.url, '--json'], { WARP_API_KEY: 'a-wrong-key' });
    expect(code).toBe(1);
    const report = JSON.parse(stdout);
    expect(report.ok).toBe(false);
    expect(report.checks.find((c: { name: string }) => c.name === 'dispatch server')).toMatchObject({
      ok: false,
      detail: 'the server refused the API key (HTTP 401)',
    });
  });

  it('says the server cannot be reached, with the fix', async () => {
    const { code, stdout } = await cli(['doctor', '--config-file', await config(), '--web-socket-url', 'ws://127.0.0.1:9/ws'], { WARP_API_KEY: API_KEY });
    expect(code).toBe(1);
    expect(stdout).toMatch(/^✘ dispatch server: cannot reach ws:\/\/127\.0\.0\.1:9\/ws: ECONNREFUSED/m);
    expect(stdout).toMatch(/^ {4}fix: check --web-socket-url/m);
  });

  it("shows the Go worker's later settings in the config check, and a key it ignores as a warning that passes", async () => {
    const server = await FakeDispatchServer.start({ apiKey: API_KEY });
    cleanups.push(() => server.close());
    const path = await config();
    writeFileSync(path, `one_shot: true\ncollect_task_logs: false\ndebug_log_capture:\n  directory: /tmp/x\n`, { flag: 'a' });
    const { code, stdout } = await cli(['doctor', '--config-file', path, '--web-socket-url', server.url], { WARP_API_KEY: API_KEY });
    expect(stdout).toMatch(/^✔ config: valid \(worker doc-worker, backend direct; one-shot \(one task, then it exits\); task logs not collected\)$/m);
    expect(stdout).toMatch(/^! config: config file key debug_log_capture is ignored: oz-worker does not implement it /m);
    expect(stdout.match(/debug_log_capture/g)).toHaveLength(1);
    expect(code).toBe(0);
  });

  it('reports a bad configuration as the first failed check', async () => {
    const { code, stdout } = await cli(['doctor', '--worker-id', 'warp-reserved'], { WARP_API_KEY: API_KEY });
    expect(code).toBe(1);
    expect(stdout).toMatch(/^✘ config: invalid worker-id: values starting with 'warp' are reserved/m);
  });
});

describe('oz-worker doctor with parts missing', () => {
  it('runs every check without an API key, marking the server check skipped', async () => {
    const dir = tempDir('doctor-nokey');
    cleanups.push(dir.cleanup);
    const root = join(dir.path, 'not', 'yet');
    const { code, stdout } = await cli(['doctor', '--worker-id', 'w', '--backend', 'direct', '--oz-path', FAKE_OZ, '--workspace-root', root]);
    expect(code).toBe(1);
    const lines = stdout.split('\n').filter((line) => !line.startsWith('    '));
    expect(lines[0]).toMatch(/^✘ config: missing API key: pass --api-key or set WARP_API_KEY/);
    expect(lines).toContain('- dispatch server: skipped: needs the configuration fixed above');
    expect(stdout).toMatch(/^✔ oz CLI: .*fake-oz\.mjs runs/m);
    expect(stdout).toContain(`✔ workspace: ${root} will be created (${dir.path} is writable)`);
    expect(stdout).toMatch(/^✔ metrics: /m);
    expect(existsSync(join(dir.path, 'not'))).toBe(false);
  });

  it('says no kubeconfig was found and where it looked, not a localhost:8080 error', async () => {
    const dir = tempDir('doctor-nokube');
    cleanups.push(dir.cleanup);
    const { stdout } = await cli(['doctor', '--worker-id', 'w', '--backend', 'kubernetes'], { HOME: dir.path, WARP_API_KEY: API_KEY });
    expect(stdout).toContain(`✘ Kubernetes API: no kubeconfig found (looked at ${join(dir.path, '.kube/config')}); set backend.kubernetes.kubeconfig`);
    expect(stdout).not.toContain('8080');
    const listed = await cli(['doctor', '--worker-id', 'w', '--backend', 'kubernetes'], {
      HOME: dir.path,
      WARP_API_KEY: API_KEY,
      KUBECONFIG: `${dir.path}/a:${dir.path}/b`,
    });
    expect(listed.stdout).toContain(`no kubeconfig found (looked at ${dir.path}/a, ${dir.path}/b)`);
  });
});
