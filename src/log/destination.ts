// Where log lines go: a file descriptor written asynchronously that never
// blocks the process. pino's own destination retries a failed synchronous
// flush every 100 ms forever, with the event loop blocked, when stdout is a
// closed pipe (`oz-worker | tee log`, then Ctrl-C): signals went unanswered and
// the worker never exited. Here a destination that fails is given up at once,
// a stalled one (a reader that stopped reading) holds at most a bounded
// backlog, and flush() calls back once written or given up (callers bound the
// wait for a reader that never reads again).
import { write as fsWrite } from 'node:fs';

/** Lines beyond this much unwritten output are dropped rather than held. */
const MAX_BACKLOG_BYTES = 8 * 1024 * 1024;
/** How long to wait before writing again to a descriptor that said EAGAIN. */
const RETRY_MS = 10;

export type WriteFn = (fd: number, buffer: Buffer, callback: (error: NodeJS.ErrnoException | null, written: number) => void) => void;

const defaultWrite: WriteFn = (fd, buffer, callback) => fsWrite(fd, buffer, 0, buffer.length, null, callback);

export class LogDestination {
  private backlog: string[] = [];
  private backlogBytes = 0;
  private writing = false;
  private failed: NodeJS.ErrnoException | undefined;
  private idleWaiters: Array<() => void> = [];
  /** Lines dropped because the backlog was full. */
  dropped = 0;

  constructor(
    private readonly fd: number,
    private readonly writeFn: WriteFn = defaultWrite,
    private readonly maxBacklogBytes = MAX_BACKLOG_BYTES,
  ) {}

  /** Why the destination was given up, if it was. */
  get error(): NodeJS.ErrnoException | undefined {
    return this.failed;
  }

  write(line: string): boolean {
    if (this.failed) return true;
    if (this.backlogBytes + line.length > this.maxBacklogBytes) {
      this.dropped++;
      return true;
    }
    this.backlog.push(line);
    this.backlogBytes += line.length;
    if (!this.writing) this.writeBacklog();
    return true;
  }

  /** Calls back once everything accepted so far is written, or the destination has failed. */
  flush(callback: (error?: Error) => void): void {
    if (!this.writing) callback();
    else this.idleWaiters.push(() => callback());
  }

  private writeBacklog(): void {
    if (this.backlog.length === 0 || this.failed) {
      this.writing = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
      return;
    }
    this.writing = true;
    const buffer = Buffer.from(this.backlog.join(''));
    this.backlog = [];
    this.backlogBytes = 0;
    this.writeBuffer(buffer);
  }

  private writeBuffer(buffer: Buffer): void {
    this.writeFn(this.fd, buffer, (error, written) => {
      if (error) {
        if (error.code === 'EAGAIN') {
          setTimeout(() => this.writeBuffer(buffer), RETRY_MS).unref();
          return;
        }
        // EPIPE, EBADF, ENOSPC…: nobody will read these lines; stop trying.
        this.failed = error;
        this.backlog = [];
        this.backlogBytes = 0;
        this.writeBacklog();
        return;
      }
      if (written < buffer.length) this.writeBuffer(buffer.subarray(written));
      else this.writeBacklog();
    });
  }
}
