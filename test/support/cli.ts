// Running a command line as a user would: one command to completion, or a
// long-running one whose output is watched, optionally on a pseudo-terminal
// (`script -qc`) so what a person sees in a terminal is what is asserted.
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname } from 'node:path';
import { BIN, REPO_ROOT } from './worker-process.js';

/** PATH with our node but certainly no `oz`: what a fresh machine looks like. */
export const FRESH_PATH = `${dirname(process.execPath)}:/usr/bin:/bin`;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** The program to run; default: the repo's bin with this node. */
  command?: string[];
}

const baseEnv = (env: Record<string, string> = {}): Record<string, string> => ({ PATH: FRESH_PATH, HOME: process.env.HOME ?? '/tmp', ...env });

/** Runs `oz-worker <args>` (or `command`) to completion, bounded in time. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  const [program, ...prefix] = options.command ?? [process.execPath, BIN];
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(program!, [...prefix, ...args], { cwd: options.cwd ?? REPO_ROOT, env: baseEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${[program, ...args].join(' ')} did not finish within ${timeoutMs} ms; output:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const shellQuote = (word: string): string => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`);

/** A long-running command; with `tty`, on a pseudo-terminal where Ctrl-C is a real keystroke. */
export class RunningCli {
  output = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(argv: string[], options: { env?: Record<string, string>; cwd?: string; tty?: boolean } = {}) {
    const env = baseEnv(options.env);
    if (options.tty) {
      // util-linux script: the command runs in its own session with the pty as its terminal. `exec`, so
      // no shell stays between them to die of the Ctrl-C and report 130 for a command that exited 0.
      this.child = spawn('script', ['-qfec', `exec ${argv.map(shellQuote).join(' ')}`, '/dev/null'], {
        cwd: options.cwd ?? REPO_ROOT,
        env: { ...env, TERM: 'dumb' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } else {
      this.child = spawn(argv[0]!, argv.slice(1), { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    }
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the match once the output shows `pattern`; fails after `timeoutMs` showing what was printed. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.exited.then(() => (ended = true));
    for (;;) {
      const match = this.output.match(pattern);
      if (match) return match;
      if (ended) throw new Error(`the command ended without printing ${pattern}; output:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; output:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Ctrl-C: a keystroke on the terminal, or SIGINT to the process group without one. */
  interrupt(): void {
    if (this.child.stdin && this.isTty()) this.child.stdin.write('\x03');
    else process.kill(-this.child.pid!, 'SIGINT');
  }

  /** Waits for the exit; kills the whole process group if it takes longer than `timeoutMs`. */
  async exit(timeoutMs = 40_000): Promise<number | null> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  kill(): void {
    try {
      if (this.isTty()) this.child.kill('SIGKILL');
      else process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }

  private isTty(): boolean {
    return this.child.spawnfile === 'script';
  }
}
