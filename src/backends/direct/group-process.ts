// A child process in its own process group. Stopping it signals the whole group
// and every process that came from it, even one that left the group (SIGTERM,
// then SIGKILL after a grace period), so tools the agent or a setup script
// started in the background stop with it. Output is read through pipes and
// handed over line by line.
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import type { TaskLogWriter } from '../../task/contract.js';
import { LineSplitter } from '../shared/output-lines.js';
import { stopTaskProcesses, type ProcessIdentity, type ProcessTable, type StopResult } from './task-processes.js';

export type { StopResult } from './task-processes.js';

export type OutputStream = 'stdout' | 'stderr';

export interface GroupCommand {
  file: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** Run as this user (the worker runs as root and `run_as_user` is set). */
  user?: { uid: number; gid: number };
}

export type ProcessEnd = { kind: 'exited'; exitCode: number | null; signal: NodeJS.Signals | null } | { kind: 'not-started'; error: Error };

/** How long output may still arrive after the leader exited while something else holds its pipes. */
const OUTPUT_SETTLE_MS = 250;

/** How the processes of one command are found again: the table, and the mark its environment carries. */
export interface Tracking {
  table: ProcessTable;
  /** `NAME=value` entry in the command's environment, inherited by its descendants. */
  mark: string | undefined;
}

export class GroupProcess {
  private stopping: Promise<StopResult> | undefined;

  private constructor(
    readonly pid: number | undefined,
    /** The leader as /proc knew it right after the start (undefined without /proc). */
    readonly identity: ProcessIdentity | undefined,
    private readonly tracking: Tracking,
    private readonly ended: Promise<ProcessEnd>,
    private readonly outputClosed: Promise<unknown>,
  ) {}

  /**
   * Starts `command` as the leader of a new process group; stdin is the null
   * device. `logs` get the output as it arrives (the task's log export).
   */
  static start(
    command: GroupCommand,
    onLine: (stream: OutputStream, line: string) => void,
    tracking: Tracking,
    logs?: Readonly<Record<OutputStream, TaskLogWriter>>,
  ): GroupProcess {
    let child: ChildProcess;
    try {
      child = spawn(command.file, [...command.args], {
        cwd: command.cwd,
        env: command.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
        ...(command.user ? { uid: command.user.uid, gid: command.user.gid } : {}),
      });
    } catch (error) {
      const end: ProcessEnd = { kind: 'not-started', error: error instanceof Error ? error : new Error(String(error)) };
      return new GroupProcess(undefined, undefined, tracking, Promise.resolve(end), Promise.resolve());
    }
    const outputClosed = Promise.all(
      (['stdout', 'stderr'] as const).map((name) => {
        const stream = child[name]!;
        const lines = new LineSplitter((line) => onLine(name, line));
        const sink = logs?.[name];
        stream.on('data', (chunk: Buffer) => {
          lines.push(chunk);
          sink?.write(chunk);
        });
        return new Promise<void>((resolve) =>
          stream.once('close', () => {
            lines.end();
            sink?.end();
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
    const identity = child.pid === undefined ? undefined : tracking.table.identify(child.pid);
    return new GroupProcess(child.pid, identity, tracking, ended, outputClosed);
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
   * Sends SIGTERM to every process of the group, its descendants and whatever
   * carries its mark, and SIGKILL after `graceMs` to whatever is still alive.
   * Resolves once they are gone or were sent SIGKILL. Later calls share the first stop.
   */
  stop(graceMs: number): Promise<StopResult> {
    this.stopping ??=
      this.pid === undefined
        ? Promise.resolve('not-running')
        : stopTaskProcesses(this.tracking.table, { groups: [this.pid], roots: this.identity ? [this.identity] : [], mark: this.tracking.mark }, graceMs);
    return this.stopping;
  }
}

export interface RunOptions {
  /** Stops the whole group when it fires. */
  signal?: AbortSignal;
  tracking: Tracking;
  /** Called once the process was started (before it ends). */
  onStart?: (process: GroupProcess) => void;
  /** Time between SIGTERM and SIGKILL. */
  graceMs: number;
  onLine: (stream: OutputStream, line: string) => void;
  /** The output, as it arrives, for the task's log export. */
  logs?: Readonly<Record<OutputStream, TaskLogWriter>> | undefined;
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
  const child = GroupProcess.start(command, options.onLine, options.tracking, options.logs);
  options.onStart?.(child);
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
