// Starts the real worker through its bin, as a user would, and collects its
// JSON log lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const BIN = join(REPO_ROOT, 'bin/oz-worker.js');
export const FAKE_OZ = join(REPO_ROOT, 'test/support/fake-oz.mjs');

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export class WorkerProcess {
  readonly logs: LogLine[] = [];
  readonly rawOutput: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        this.rawOutput.push(line);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          // not a JSON log line (usage errors go to stderr as plain text)
        }
      }
      this.notify();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.notify();
        resolve({ code, signal });
      }),
    );
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  get output(): string {
    return this.rawOutput.join('\n');
  }

  async waitForLog(match: (line: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.logs.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out waiting for a log line; output:\n${this.output.slice(-4000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** `promise`, whose failure also shows the end of this worker's output (what it said before the test gave up). */
  async withOutput<T>(promise: Promise<T>): Promise<T> {
    try {
      return await promise;
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${this.output.slice(-4000)}`);
    }
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

export interface StartOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Inherit nothing from the test's environment except PATH/HOME unless given. */
  cwd?: string;
  /** Start under this umask (through /bin/sh), e.g. "000". */
  umask?: string;
}

/** Spawns `node bin/oz-worker.js <args>` with a small, explicit environment. */
export function startWorker(options: StartOptions = {}): WorkerProcess {
  const argv = [BIN, ...(options.args ?? [])];
  const [command, args] =
    options.umask === undefined ? [process.execPath, argv] : ['/bin/sh', ['-c', `umask ${options.umask} && exec "$0" "$@"`, process.execPath, ...argv]];
  const child = spawn(command, args, {
    cwd: options.cwd ?? REPO_ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      // Each worker gets its own journal unless a test shares one on purpose (restart tests).
      OZ_WORKER_STATE_DIR: mkdtempSync(join(tmpdir(), 'oz-state-')),
      OZ_WORKER_RECONNECT_INITIAL_MS: '50',
      OZ_WORKER_RECONNECT_MAX_MS: '500',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new WorkerProcess(child);
}

/** A temp directory removed by the returned cleanup. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `oz-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}
