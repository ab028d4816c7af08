// A child process in its own process group. Stopping it signals the whole group
// (SIGTERM, then SIGKILL after a grace period), so tools the agent or a setup
// script started in the background stop with it. Output is read through pipes
// and handed over line by line.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { getSystemErrorMessage } from 'node:util';
import { LineSplitter } from './output-lines.js';

export type OutputStream = 'stdout' | 'stderr';

export interface GroupCommand {
  file: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
}

export type ProcessEnd =
  | { kind: 'exited'; exitCode: number | null; signal: NodeJS.Signals | null }
  | { kind: 'not-started'; error: Error };

/** How long output may still arrive after the leader exited while something else holds its pipes. */
const OUTPUT_SETTLE_MS = 250;

/** What stopping a group took: nothing was running, SIGTERM sufficed, or SIGKILL was needed. */
export type StopResult = 'not-running' | 'terminated' | 'killed';

export class GroupProcess {
  private stopping: Promise<StopResult> | undefined;

  private constructor(
    readonly pid: number | undefined,
    private readonly ended: Promise<ProcessEnd>,
    private readonly outputClosed: Promise<unknown>,
  ) {}

  /** Starts `command` as the leader of a new process group; stdin is the null device. */
  static start(command: GroupCommand, onLine: (stream: OutputStream, line: string) => void): GroupProcess {
    let child: ChildProcess;
    try {
      child = spawn(command.file, [...command.args], {
        cwd: command.cwd,
        env: command.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (error) {
      const end: ProcessEnd = { kind: 'not-started', error: error instanceof Error ? error : new Error(String(error)) };
      return new GroupProcess(undefined, Promise.resolve(end), Promise.resolve());
    }
    const outputClosed = Promise.all(
      (['stdout', 'stderr'] as const).map((name) => {
        const stream = child[name]!;
        const lines = new LineSplitter((line) => onLine(name, line));
        stream.on('data', (chunk: Buffer) => lines.push(chunk));
        return new Promise<void>((resolve) =>
          stream.once('close', () => {
            lines.end();
            resolve();
          }),
        );
      }),
    );
    const ended = new Promise<ProcessEnd>((resolve) => {
      child.once('exit', (exitCode, signal) => resolve({ kind: 'exited', exitCode, signal }));
      child.on('error', (error) => {
        if (child.pid === undefined) resolve({ kind: 'not-started', error });
      });
    });
    return new GroupProcess(child.pid, ended, outputClosed);
  }

  /** The leader's end, once its output was read (or stopped arriving). */
  async finished(): Promise<ProcessEnd> {
    const end = await this.ended;
    if (end.kind === 'exited') await Promise.race([this.outputClosed, delay(OUTPUT_SETTLE_MS, undefined, { ref: false })]);
    return end;
  }

  get stopRequested(): boolean {
    return this.stopping !== undefined;
  }

  /**
   * Sends SIGTERM to every process in the group and SIGKILL after `graceMs` to
   * whatever is still alive. Resolves once the group is gone or was sent
   * SIGKILL. Later calls share the first stop.
   */
  stop(graceMs: number): Promise<StopResult> {
    this.stopping ??= this.terminate(graceMs);
    return this.stopping;
  }

  private async terminate(graceMs: number): Promise<StopResult> {
    const group = this.pid;
    if (group === undefined || !(await groupHasLiveMembers(group))) return 'not-running';
    signalGroup(group, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await delay(Math.min(pause, left));
      if (!(await groupHasLiveMembers(group))) return 'terminated';
    }
    signalGroup(group, 'SIGKILL');
    return 'killed';
  }
}

function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch {
    // The group is already gone.
  }
}

/**
 * Whether the group still has a process that is not a zombie. Orphaned members
 * are reparented to PID 1, which in containers often never reaps them; a
 * zombie cannot be stopped and must not hold up the stop.
 */
async function groupHasLiveMembers(group: number): Promise<boolean> {
  try {
    process.kill(-group, 0);
  } catch {
    // ESRCH: gone. EPERM: members exist but are not ours to signal, so there is nothing to wait for.
    return false;
  }
  if (process.platform !== 'linux') return true;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return true;
  }
  const states = await Promise.all(
    entries
      .filter((name) => /^\d+$/.test(name))
      .map(async (pid) => {
        try {
          const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
          // Fields after the parenthesised command name: state, ppid, pgrp, …
          const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          return Number(pgrp) === group ? state : undefined;
        } catch {
          return undefined;
        }
      }),
  );
  const members = states.filter((state) => state !== undefined);
  // No member visible although the kernel knows the group: /proc is hidden from us, so assume it lives.
  if (members.length === 0) return true;
  return members.some((state) => state !== 'Z' && state !== 'X');
}

export interface RunOptions {
  /** Stops the whole group when it fires. */
  signal?: AbortSignal;
  /** Time between SIGTERM and SIGKILL. */
  graceMs: number;
  onLine: (stream: OutputStream, line: string) => void;
}

/**
 * Runs `command` until its leader exits. When `signal` fires, the group is
 * stopped, and this resolves only after that stop finished. Processes the
 * leader left running are not touched: the caller decides (`process.stop`).
 */
export async function runInOwnGroup(
  command: GroupCommand,
  options: RunOptions,
): Promise<{ process: GroupProcess; end: ProcessEnd; stopped: StopResult | undefined }> {
  const child = GroupProcess.start(command, options.onLine);
  const onAbort = (): void => void child.stop(options.graceMs);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const end = await child.finished();
    const stopped = child.stopRequested ? await child.stop(options.graceMs) : undefined;
    return { process: child, end, stopped };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/** Go's exec error text for a process that could not be started: `fork/exec <path>: <reason>`. */
export function startErrorText(file: string, error: Error): string {
  const errno = (error as NodeJS.ErrnoException).errno;
  if (typeof errno !== 'number') return error.message;
  const reason = getSystemErrorMessage(errno);
  return `fork/exec ${file}: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`;
}
