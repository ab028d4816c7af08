// What the worker's log says, as an operator reads it: one line per failed
// connection attempt with the retry delay, nothing about a repeated Ctrl-C, a
// task stopped by shutdown is no ERROR, and in a terminal one agent output line
// is one line (coloured unless NO_COLOR).
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { API_KEY } from '../support/direct-worker.js';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { BIN, FAKE_OZ, startWorker, tempDir } from '../support/worker-process.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A direct-backend worker running the stand-in agent against `serverUrl`. */
function directWorkerArgs(workerId: string, workspaceRoot: string, serverUrl: string): string[] {
  return ['--worker-id', workerId, '--backend', 'direct', '--oz-path', FAKE_OZ, '--workspace-root', workspaceRoot, '--web-socket-url', serverUrl];
}

async function harness(args: string[] = [], env: Record<string, string> = {}, apiKey = API_KEY) {
  const server = await FakeDispatchServer.start({ apiKey: API_KEY });
  const dir = tempDir('log-noise');
  const worker = startWorker({
    args: [...directWorkerArgs('noise', join(dir.path, 'ws'), server.url), ...args],
    env: { WARP_API_KEY: apiKey, ...env },
  });
  cleanups.push(async () => {
    await worker.stop();
    await server.close();
    dir.cleanup();
  });
  return { server, worker, dir };
}

const assignment = (id: string) => ({ task_id: id, execution_id: `e-${id}`, task: { id, title: 't', owner: { Type: 'TEAM', Id: 1 } } });

describe('worker log lines', () => {
  it('a refused key: one line per attempt, each saying when it retries, and nothing else about it', async () => {
    const { server, worker } = await harness([], {}, 'a-wrong-key');
    const deadline = Date.now() + 15_000;
    while (server.handshakes.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    worker.signal('SIGTERM');
    await worker.exited;
    const attempts = server.handshakes.length;
    expect(attempts).toBeGreaterThanOrEqual(4);
    const about = worker.logs.filter((l) => /rejected|closed|Failed to connect|retry/i.test(l.msg));
    expect(about.every((l) => /^WebSocket upgrade rejected with HTTP 401: .*; retrying in \d+(\.\d)? s$/.test(l.msg))).toBe(true);
    // The last attempt may be refused after SIGTERM arrived; it is then not retried.
    expect(about.length).toBeGreaterThanOrEqual(attempts - 1);
    expect(about.length).toBeLessThanOrEqual(attempts);
    expect(worker.output).not.toContain('closed before the connection was established');
  });

  it('two stop signals a moment apart (Ctrl-C under npm start or local) are one graceful stop, without a line about the second', async () => {
    const { server, worker } = await harness(['-e', 'FAKE_OZ_SLEEP_MS=60000']);
    await server.waitForConnection();
    server.assign(assignment('twice-1'));
    await worker.waitForLog((l) => /fake-oz: started/.test(l.msg));
    worker.signal('SIGINT');
    await worker.waitForLog((l) => /^Shutting down/.test(l.msg));
    worker.signal('SIGINT');
    const { code } = await worker.exited;
    expect(code).toBe(0);
    expect(worker.output).not.toContain('Stop request repeated');
    expect(worker.logs.some((l) => l.msg === 'Worker shutdown complete')).toBe(true);
  });

  it('one Ctrl-C of oz-worker local (SIGINT to the whole process group) stops it without a line about a repeated stop', async () => {
    const dir = tempDir('log-local');
    const child = spawn(process.execPath, [BIN, 'local', '--demo', '--state-dir', dir.path, '--listen', '127.0.0.1:0'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // 'close': the process exited and every holder of its output pipes (the worker too) let go of them.
    const outputClosed = new Promise<void>((resolve) => child.on('close', () => resolve()));
    cleanups.push(async () => {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
      await exited;
      dir.cleanup();
    });
    const deadline = Date.now() + 20_000;
    while (!output.includes('Press Ctrl-C') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(output).toContain('Press Ctrl-C');
    process.kill(-child.pid!, 'SIGINT');
    // The worker's last words arrive once its own pipe closes.
    await outputClosed;
    expect(output).toContain('Worker shutdown complete');
    expect(output).not.toContain('Stop request repeated');
  }, 40_000);

  it('a task stopped by shutdown is a warning that says so, not an ERROR "context canceled"', async () => {
    const { server, worker } = await harness(['-e', 'FAKE_OZ_SLEEP_MS=60000', '--shutdown-grace-period', '5s']);
    await server.waitForConnection();
    server.assign(assignment('stopped-1'));
    await worker.waitForLog((l) => /fake-oz: started/.test(l.msg));
    worker.signal('SIGTERM');
    await worker.exited;
    expect(worker.logs.filter((l) => l.level >= 50)).toEqual([]);
    expect(worker.output).not.toContain('context canceled');
    const line = worker.logs.find((l) => l.taskId === 'stopped-1' && l.level === 40 && /shutting down/.test(l.msg));
    expect(line?.msg).toBe('Task stopped because the worker is shutting down; reported as failed so the server can run it again');
  });
});

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
if (!hasScript) console.log('terminal log tests skipped: util-linux `script` is not installed');

describe.skipIf(!hasScript)('in a terminal', () => {
  /** Runs the worker under `script` (a pseudo-terminal), gives it one task, returns what the terminal showed. */
  async function terminalOutput(env: Record<string, string>): Promise<string> {
    const server = await FakeDispatchServer.start({ apiKey: API_KEY });
    const dir = tempDir('log-tty');
    cleanups.push(async () => {
      await server.close();
      dir.cleanup();
    });
    const command = [process.execPath, BIN, ...directWorkerArgs('tty', join(dir.path, 'ws'), server.url), '-e', 'FAKE_OZ_PRINT=second line of agent output']
      .map((word) => `'${word}'`)
      .join(' ');
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dir.path,
        TERM: 'xterm',
        WARP_API_KEY: API_KEY,
        OZ_WORKER_STATE_DIR: join(dir.path, 'state'),
        ...env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    await server.waitForConnection();
    server.assign(assignment('tty-1'));
    await server.waitForMessage('task_completed', 'tty-1');
    // The worker logs the outcome after the agent's lines: once it shows, the terminal has them all.
    await server.until(() => output.includes('Task completed'), 10_000, 'the terminal to show "Task completed"');
    return output;
  }

  it('one agent output line is one terminal line, tagged with its task, in colour', async () => {
    const output = await terminalOutput({});
    const lines = output.split(/\r?\n/);
    const agentLines = lines.filter((line) => line.includes('second line of agent output') || line.includes('fake-oz: started'));
    expect(agentLines).toHaveLength(2);
    for (const line of agentLines) expect(line).toContain('[tty-1] ');
    expect(lines.some((line) => /^\s+taskId:/.test(line))).toBe(false);
    expect(output).toContain('\u001b[');
  }, 30_000);

  it('NO_COLOR turns the colours off', async () => {
    const output = await terminalOutput({ NO_COLOR: '1' });
    expect(output).toContain('[tty-1] fake-oz: started');
    expect(output).not.toContain('\u001b[');
  }, 30_000);
});
