// What an agent can reach of the worker that runs it: not the worker's API key
// (through /proc), not the local server's keys next to its workspace; with
// `run_as_user`, not even the worker's files. And a key on the command line,
// which every local user can read, is called out.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { shellTask, startShellAgentWorker, type ShellAgentHarness } from '../support/shell-agent-worker.js';
import { BIN, REPO_ROOT, tempDir } from '../support/worker-process.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A key no other process on this machine knows, so finding it anywhere means it leaked from this worker. */
function uniqueKey(): string {
  return `wk_isolation_${randomBytes(12).toString('hex')}`;
}

async function harness(key: string, options: Parameters<typeof startShellAgentWorker>[0] = {}): Promise<ShellAgentHarness> {
  const server = await FakeDispatchServer.start({ apiKey: key });
  cleanups.push(() => server.close());
  const h = await startShellAgentWorker({ ...options, server, env: { WARP_API_KEY: key, ...options.env } });
  cleanups.push(() => h.close());
  await server.waitForConnection();
  return h;
}

describe('the worker API key', () => {
  it("is not in the worker's environment block, which the agent reads through /proc", async () => {
    const key = uniqueKey();
    const h = await harness(key);
    const readAll = 'for f in /proc/[0-9]*/environ; do cat "$f" 2>/dev/null; echo; done > "$OUT/all-env"';
    h.server.assign(shellTask('peek-1', `echo $PPID > "$OUT/ppid"; tr '\\0' '\\n' < /proc/$PPID/environ > "$OUT/parent-env"; ${readAll}`));
    await h.server.waitForMessage('task_completed', 'peek-1');
    expect(Number(h.readOut('ppid'))).toBe(h.worker.child.pid);
    const parentEnv = h.readOut('parent-env')!;
    expect(parentEnv).toContain('OZ_WORKER_STATE_DIR='); // it did read the worker's environment
    expect(parentEnv).not.toContain(key);
    expect(h.readOut('all-env')).not.toContain(key);
    // …and the worker still authenticates with it.
    expect(h.server.handshakes.at(-1)?.authorization).toBe(`Bearer ${key}`);
  });

  it('on the command line gets a one-line warning naming WARP_API_KEY and --api-key-file', async () => {
    const key = uniqueKey();
    const server = await FakeDispatchServer.start({ apiKey: key });
    cleanups.push(() => server.close());
    const h = await startShellAgentWorker({ server, args: ['--api-key', key], env: { WARP_API_KEY: '' } });
    cleanups.push(() => h.close());
    await server.waitForConnection();
    const warnings = h.worker.logs.filter((l) => l.level === 40 && l.msg.includes('--api-key'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(/ps/);
    expect(warnings[0]!.msg).toContain('WARP_API_KEY');
    expect(warnings[0]!.msg).toContain('--api-key-file');
    expect(h.worker.output).not.toContain(key);
  });
});

const RUN_AS = 'oz-it-agent';

function ensureUser(name: string): { uid: number; home: string } {
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', name], { stdio: 'ignore' });
  }
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find((fields) => fields[0] === name)!;
  return { uid: Number(entry[2]), home: entry[5]! };
}

/** The test user, or why the run_as_user test cannot run here. */
function testUser(): { uid: number; home: string } | string {
  if (process.getuid?.() !== 0) return 'the worker must run as root to start processes as another user';
  try {
    return ensureUser(RUN_AS);
  } catch (error) {
    return `could not create the test user ${RUN_AS} with useradd (${(error as Error).message})`;
  }
}
const runAsUser = testUser();
if (typeof runAsUser === 'string') console.log(`run_as_user test skipped: ${runAsUser}`);

describe.skipIf(typeof runAsUser === 'string')('backend.direct.run_as_user', () => {
  it("runs setup, agent and teardown as that user, with its own HOME; the worker's files are out of reach", async () => {
    const user = runAsUser as { uid: number; home: string };
    const key = uniqueKey();
    const state = tempDir('run-as-state');
    cleanups.push(state.cleanup);
    const who = (name: string): string => `{ id -u; echo "$HOME"; pwd; } > "$OUT/${name}"`;
    const h = await harness(key, {
      env: { OZ_WORKER_STATE_DIR: state.path },
      directYaml: [`run_as_user: ${RUN_AS}`, `setup_command: '${who('setup')}'`, `teardown_command: '${who('teardown')}'`].join('\n'),
    });
    const agent = [
      who('agent'),
      'echo hello > "$PWD/written-by-agent"',
      `{ cat /proc/$PPID/environ >/dev/null 2>&1 && echo readable || echo denied; } > "$OUT/parent-env"`,
      `{ ls ${JSON.stringify(state.path)} >/dev/null 2>&1 && echo readable || echo denied; } > "$OUT/state-dir"`,
    ].join('; ');
    h.server.assign(shellTask('as-user-1', agent));
    await h.server.waitForMessage('task_completed', 'as-user-1');
    await h.waitForOut('teardown');
    for (const name of ['setup', 'agent', 'teardown']) {
      const [uid, home, cwd] = h.readOut(name)!.trim().split('\n');
      expect({ name, uid: Number(uid), home, cwd }).toEqual({ name, uid: user.uid, home: user.home, cwd: join(h.workspaceRoot, 'as-user-1') });
    }
    expect(h.readOut('parent-env')).toBe('denied\n');
    expect(h.readOut('state-dir')).toBe('denied\n');
    await h.server.until(() => h.workspaces().length === 0, 10_000, 'the workspace to be removed');
  });
});

describe('backend.direct.run_as_user in the config', () => {
  it('names an unknown user at start-up, with exit code 2', async () => {
    const dir = tempDir('run-as-bad');
    cleanups.push(dir.cleanup);
    const config = join(dir.path, 'config.yaml');
    writeFileSync(
      config,
      `worker_id: w\nbackend:\n  direct:\n    oz_path: /bin/true\n    workspace_root: ${dir.path}/ws\n    run_as_user: no-such-user-oz-it\n`,
    );
    const child = spawn(process.execPath, [BIN, '--config-file', config, '--web-socket-url', 'ws://127.0.0.1:9/'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, WARP_API_KEY: 'k', OZ_WORKER_STATE_DIR: join(dir.path, 'state') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((done) => child.on('exit', done));
    expect(code).toBe(2);
    expect(output).toMatch(/backend\.direct\.run_as_user.*no-such-user-oz-it/);
  });
});

describe('oz-worker local', () => {
  it('keeps workspaces outside its state directory, away from admin.key and local.json', async () => {
    const dir = tempDir('local-isolation');
    cleanups.push(dir.cleanup);
    const state = join(dir.path, 'state');
    const cache = join(dir.path, 'cache');
    const agent = join(dir.path, 'agent.sh');
    const seen = join(dir.path, 'seen');
    writeFileSync(agent, `#!/bin/sh\n{ pwd; ls ../../admin.key ../../local.json 2>/dev/null; } > ${JSON.stringify(seen)}\nexit 0\n`, { mode: 0o755 });
    const child = spawn(process.execPath, [BIN, 'local', '--demo', '--once', '--listen', '127.0.0.1:0', '--state-dir', state, '--oz-path', agent], {
      cwd: REPO_ROOT,
      env: { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: process.env.HOME ?? '/tmp', XDG_CACHE_HOME: cache },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((done) => child.on('exit', done));
    expect(code, output).toBe(0);
    const [cwd, ...reachable] = readFileSync(seen, 'utf8').trim().split('\n');
    expect(relative(resolve(state), cwd!).startsWith('..')).toBe(true);
    expect(cwd!.startsWith(join(cache, 'oz-worker'))).toBe(true);
    expect(reachable).toEqual([]);
  });
});
