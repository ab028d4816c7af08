// Runs an operator command through `/bin/sh -c` in its own process group.
// A timeout or abort sends SIGTERM to the whole group and SIGKILL after a
// grace period, so what the command started does not outlive it. Output is
// handed over line by line, and the end of stderr is kept for error messages.
import { execa } from 'execa';
import { LineSplitter } from '../shared/output-lines.js';

export const SHELL = '/bin/sh';
/** How much of stderr's end a failure message quotes. */
export const STDERR_TAIL_BYTES = 2048;
/** How long output may still arrive after the shell exited while something else holds its pipes. */
const OUTPUT_SETTLE_MS = 250;

export type OutputStream = 'stdout' | 'stderr';

export interface ShellCommand {
  command: string;
  env: Record<string, string>;
  /** Bytes for stdin; without it stdin is the null device. */
  input?: string;
  timeoutMs: number;
  /** Stops the command (the caller's cancellation). */
  signal?: AbortSignal;
  /** Time between SIGTERM and SIGKILL when stopping. */
  graceMs: number;
  onLine: (stream: OutputStream, line: string) => void;
}

export type ShellEnd = { kind: 'exited'; exitCode: number | undefined; signal: string | undefined } | { kind: 'not-started'; error: Error };

export interface ShellResult {
  end: ShellEnd;
  timedOut: boolean;
  cancelled: boolean;
  /** The last STDERR_TAIL_BYTES of stderr, trimmed ('' when it printed nothing). */
  stderrTail: string;
}

/** Keeps the last `limit` bytes written. */
export class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  private truncated = false;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0]!.length >= this.limit) {
      this.size -= this.chunks.shift()!.length;
      this.truncated = true;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    const cut = all.length > this.limit;
    // A cut may split a UTF-8 character: drop what decodes to replacement characters at the start.
    let text = all.subarray(all.length - Math.min(all.length, this.limit)).toString('utf8');
    if (cut) text = text.replace(/^\uFFFD+/, '');
    text = text.trim();
    return text !== '' && (cut || this.truncated) ? `…${text}` : text;
  }
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

export async function runShell(run: ShellCommand): Promise<ShellResult> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), run.timeoutMs);
  const stop = run.signal ? AbortSignal.any([run.signal, timeout.signal]) : timeout.signal;
  const tail = new Tail(STDERR_TAIL_BYTES);
  const subprocess = execa(SHELL, ['-c', run.command], {
    ...(run.input === undefined ? { stdin: 'ignore' as const } : { input: run.input }),
    env: run.env,
    // The caller decides every variable (the worker's own credentials are left out).
    extendEnv: false,
    detached: true,
    buffer: false,
    reject: false,
    cancelSignal: stop,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: run.graceMs,
  });
  let killTimer: NodeJS.Timeout | undefined;
  const onStop = (): void => {
    // execa signals the shell; the rest of its group gets the same treatment.
    signalGroup(subprocess.pid, 'SIGTERM');
    killTimer = setTimeout(() => signalGroup(subprocess.pid, 'SIGKILL'), run.graceMs);
  };
  if (stop.aborted) onStop();
  else stop.addEventListener('abort', onStop, { once: true });

  const splitters = {
    stdout: new LineSplitter((line) => run.onLine('stdout', line)),
    stderr: new LineSplitter((line) => run.onLine('stderr', line)),
  };
  subprocess.stdout?.on('data', (chunk: Buffer) => splitters.stdout.push(chunk));
  subprocess.stderr?.on('data', (chunk: Buffer) => {
    tail.push(chunk);
    splitters.stderr.push(chunk);
  });
  // A background process the command started may hold the pipes open; the
  // command's end is the shell's exit, not the pipes' close.
  subprocess.once('exit', () => {
    setTimeout(() => {
      subprocess.stdout?.destroy();
      subprocess.stderr?.destroy();
    }, OUTPUT_SETTLE_MS).unref();
  });

  try {
    const result = await subprocess;
    splitters.stdout.end();
    splitters.stderr.end();
    const started = result.exitCode !== undefined || result.signal !== undefined;
    const end: ShellEnd = started
      ? { kind: 'exited', exitCode: result.exitCode, signal: result.signal }
      : { kind: 'not-started', error: result.cause instanceof Error ? result.cause : new Error(result.shortMessage) };
    return { end, timedOut: timeout.signal.aborted && !run.signal?.aborted, cancelled: run.signal?.aborted === true, stderrTail: tail.text() };
  } finally {
    clearTimeout(timer);
    stop.removeEventListener('abort', onStop);
    // After a stop, whatever is left of the group gets SIGKILL once the grace period ended.
    if (killTimer) killTimer.unref();
  }
}
