// What the worker must not forget across a crash: the statuses not yet written
// to the socket, and the tasks that were running. Kept as an append-only log of
// JSON lines in the state directory, so recording a status costs one small
// append (batched per tick) however long the backlog is; the log is rewritten
// compactly at start-up and whenever it has grown well past what it describes.
// After a SIGKILL the next start delivers the saved statuses and reports every
// task that was running and cannot be picked up again as failed, with a reason,
// instead of leaving the server waiting forever.
//
// Records (one JSON object per line):
//   {"journal":2}                    header
//   {"s":<seq>,"m":<message>}        a status entered the outbox
//   {"d":<seq>}                      that status was written to the socket
//   {"l":"<task id>","e":"<exec>"}   a task running (when the log was compacted, or as it was
//                                    claimed) and the execution it runs; no "e" when it has none
//   {"h":"<task id>"}                a task handed to its own runtime (dispatch command)
//   {"r":"<key>","t":"<task id>","x":<note>}   what a task would leave behind (backend's note)
//   {"r":"<key>"}                    …and that it left nothing after all
// A task is running from its `task_claimed` status until its terminal status
// or its hand-off. A leftover note lives until the backend clears it (its
// cleanup may outlast the task's report). A damaged line loses only itself:
// the rest is replayed and the damaged file is kept aside.
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { OutboxEntry, OutboxObserver } from '../connection/outbox.js';
import type { LeftoverNote } from '../task/contract.js';
import type { Logger } from '../log/logger.js';
import { OutboundMessageSchema, type OutboundMessage } from '../protocol/messages.js';
import { errorMessage } from '../errors/error-message.js';

const HEADER = '{"journal":2}\n';
/** Compact once the log is this large and mostly describes statuses long delivered. */
const COMPACT_MIN_BYTES = 1024 * 1024;
const COMPACT_FACTOR = 4;

export interface JournalContents {
  /** Statuses not yet written to the socket, oldest first. */
  outbox: OutboundMessage[];
  /** Tasks claimed and not yet finished. */
  liveTasks: LiveTask[];
  /** What tasks of the previous process would have left behind, by the backend's key. */
  leftovers: Leftover[];
  /** Line numbers (1-based) that could not be read and were skipped. */
  damagedLines: number[];
}

export interface LiveTask {
  taskId: string;
  /** The assignment's execution id; '' when it had none (or a journal of an earlier version did not say). */
  executionId: string;
}

export interface Leftover {
  key: string;
  taskId: string;
  note: LeftoverNote;
}

/** The file for one worker id: ids are sanitised, with a hash so two ids never share a file. */
export function journalPath(stateDir: string, workerId: string): string {
  const safe = workerId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
  let hash = 0;
  for (const char of workerId) hash = (Math.imul(hash, 31) + char.charCodeAt(0)) >>> 0;
  return join(stateDir, `worker-${safe}-${hash.toString(16)}.jsonl`);
}

/** The message sent for a task that was running when the previous worker process died. */
export function lostTaskFailure({ taskId, executionId }: LiveTask): OutboundMessage {
  return {
    type: 'task_failed',
    data: {
      task_id: taskId,
      ...(executionId ? { execution_id: executionId } : {}),
      message:
        'The worker stopped unexpectedly (it was killed or crashed) while this task was running, so the agent was interrupted and its result is unknown. Run the task again; if this repeats, check the worker host for out-of-memory kills or restarts.',
      failure_reason: 'unknown',
    },
  };
}

const isTerminal = (message: OutboundMessage): boolean => message.type === 'task_completed' || message.type === 'task_failed';

type JournalRecord = { s?: unknown; m?: unknown; d?: unknown; l?: unknown; e?: unknown; h?: unknown; r?: unknown; t?: unknown; x?: unknown };

/**
 * Replays a log. A torn last line (the process died mid-append) is skipped
 * silently; any other line that cannot be read is skipped and its number
 * returned. A file of another format altogether is not replayed at all.
 */
export function replayJournal(text: string): JournalContents | undefined {
  const lines = text.split('\n');
  const damagedLines: number[] = [];
  const first = 1;
  if (lines[0] !== HEADER.trimEnd()) {
    const header = parseRecord(lines[0]!);
    if (header && ('journal' in header || 'version' in header)) return undefined;
    damagedLines.push(1);
  }
  const pending = new Map<number, OutboundMessage>();
  const live: LiveTasks = new Map();
  const leftovers = new Map<string, Leftover>();
  for (let i = first; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const record = parseRecord(line);
    if (record === undefined) {
      if (i === lines.length - 1) break; // torn final append
      damagedLines.push(i + 1);
      continue;
    }
    if (typeof record.d === 'number') {
      pending.delete(record.d);
    } else if (typeof record.l === 'string') {
      live.set(record.l, typeof record.e === 'string' ? record.e : '');
    } else if (typeof record.h === 'string') {
      live.delete(record.h);
    } else if (typeof record.r === 'string' && record.x === undefined) {
      leftovers.delete(record.r);
    } else if (typeof record.r === 'string' && typeof record.t === 'string' && typeof record.x === 'object' && record.x !== null && !Array.isArray(record.x)) {
      leftovers.set(record.r, { key: record.r, taskId: record.t, note: record.x as LeftoverNote });
    } else if (typeof record.s === 'number') {
      const parsed = OutboundMessageSchema.safeParse(record.m);
      if (!parsed.success) {
        damagedLines.push(i + 1);
        continue;
      }
      pending.set(record.s, parsed.data);
      trackLiveness(live, parsed.data);
    } else {
      damagedLines.push(i + 1);
    }
  }
  const outbox = [...pending.entries()].sort(([a], [b]) => a - b).map(([, message]) => message);
  const liveTasks = [...live].map(([taskId, executionId]) => ({ taskId, executionId }));
  return { outbox, liveTasks, leftovers: [...leftovers.values()], damagedLines };
}

function parseRecord(line: string): JournalRecord | undefined {
  try {
    const record = JSON.parse(line) as unknown;
    return typeof record === 'object' && record !== null && !Array.isArray(record) ? (record as JournalRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** "line 3", "lines 3 and 5", "lines 3, 5 and 9" (at most 20 named). */
export function describeLines(numbers: readonly number[]): string {
  const named = numbers.slice(0, 20).map(String);
  const more = numbers.length - named.length;
  if (more > 0) return `lines ${named.join(', ')} and ${more} more`;
  if (named.length === 1) return `line ${named[0]}`;
  return `lines ${named.slice(0, -1).join(', ')} and ${named.at(-1)}`;
}

const leftoverLine = (key: string, taskId: string, note: LeftoverNote): string => `${JSON.stringify({ r: key, t: taskId, x: note })}\n`;

/** The record of a status entering the outbox. */
const statusLine = ({ seq, message }: OutboxEntry): string => `{"s":${seq},"m":${JSON.stringify(message)}}\n`;

/** Running tasks by id, with the execution each runs ('' until its claim said, or when it has none). */
type LiveTasks = Map<string, string>;

/** A claim makes a task live (its execution is recorded by `claimed`); a terminal status ends it. */
function trackLiveness(live: LiveTasks, message: OutboundMessage): void {
  if (message.type === 'task_claimed') {
    if (!live.has(message.data.task_id)) live.set(message.data.task_id, '');
  } else if (isTerminal(message)) live.delete(message.data.task_id);
}

const liveLine = (taskId: string, executionId: string): string => `${JSON.stringify(executionId ? { l: taskId, e: executionId } : { l: taskId })}\n`;

export class Journal implements OutboxObserver {
  private readonly live: LiveTasks = new Map();
  /** Leftover notes by key, as the line that records each. */
  private readonly notes = new Map<string, string>();
  /** Line length of each status not yet delivered, and their sum: about what a compacted log would hold. */
  private readonly pendingBytes = new Map<number, number>();
  private compactedBytes = 0;
  private fileBytes = 0;
  private buffered: string[] = [];
  private handle: FileHandle | undefined;
  private writing: Promise<void> | undefined;
  private disabled = false;

  constructor(
    readonly path: string,
    /** The outbox's entries, oldest first (read when compacting). */
    private readonly entries: () => OutboxEntry[],
    private readonly log: Logger,
  ) {}

  /** What the previous process left, or nothing (a missing file is not an error). */
  load(): JournalContents | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return undefined;
    }
    const contents = replayJournal(text);
    if (contents && contents.damagedLines.length === 0) return contents;
    const aside = this.keepAside();
    const kept = aside ? `; the damaged file is kept as ${aside}` : '';
    if (!contents) {
      this.log.warn({ path: this.path }, `Ignoring a worker journal from a previous run that is not in a format this version reads${kept}`);
      return undefined;
    }
    this.log.warn(
      { path: this.path, damagedLines: contents.damagedLines },
      `Skipped ${describeLines(contents.damagedLines)} of the worker journal (damaged) and replayed the rest${kept}`,
    );
    return contents;
  }

  /** Copies the file as it was found next to it (`<name>.damaged-<time>`), for a person to look at. */
  private keepAside(): string | undefined {
    const aside = `${this.path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    try {
      copyFileSync(this.path, aside);
      return aside;
    } catch {
      return undefined;
    }
  }

  /**
   * Notes of the previous process that are still to be cleaned up: kept in the
   * new log (call before `start`) until cleared with `leftovers(key, …, undefined)`.
   */
  carryOver(leftovers: readonly Leftover[]): void {
    for (const { key, taskId, note } of leftovers) this.notes.set(key, leftoverLine(key, taskId, note));
  }

  /** Records (or, with no note, clears) what a task would leave behind if the worker died now. */
  leftovers(key: string, taskId: string, note: LeftoverNote | undefined): void {
    if (this.disabled) return;
    if (note === undefined) {
      if (!this.notes.delete(key)) return;
      this.append(`${JSON.stringify({ r: key })}\n`);
      return;
    }
    const line = leftoverLine(key, taskId, note);
    this.notes.set(key, line);
    this.append(line);
  }

  /**
   * Rewrites the log to describe the present (call after re-queuing what
   * `load` returned), then records every change from here on.
   */
  start(): void {
    for (const { message } of this.entries()) trackLiveness(this.live, message);
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      this.writeCompacted();
    } catch (error) {
      this.fail(error);
    }
  }

  enqueued(entry: OutboxEntry): void {
    if (this.disabled) return;
    const line = statusLine(entry);
    this.pendingBytes.set(entry.seq, line.length);
    this.compactedBytes += line.length;
    trackLiveness(this.live, entry.message);
    this.append(line);
  }

  delivered(seq: number): void {
    if (this.disabled) return;
    this.compactedBytes -= this.pendingBytes.get(seq) ?? 0;
    this.pendingBytes.delete(seq);
    this.append(`{"d":${seq}}\n`);
  }

  /**
   * The task just claimed runs this execution: kept so that, after a crash, the
   * failure reported for it names the execution (the claim itself does not carry it).
   */
  claimed(taskId: string, executionId: string): void {
    if (this.disabled || !executionId || !this.live.has(taskId)) return;
    this.live.set(taskId, executionId);
    this.append(liveLine(taskId, executionId));
  }

  /** The task's outcome is no longer this worker's to report. */
  handedOff(taskId: string): void {
    if (this.disabled || !this.live.delete(taskId)) return;
    this.append(`${JSON.stringify({ h: taskId })}\n`);
  }

  /** Resolves once everything recorded so far is on disk. */
  async settled(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private append(line: string): void {
    this.buffered.push(line);
    // Changes made in the same tick are written with one append.
    this.writing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    while (this.buffered.length > 0 && !this.disabled) {
      const text = this.buffered.join('');
      this.buffered = [];
      try {
        if (this.fileBytes + text.length > COMPACT_MIN_BYTES && this.fileBytes + text.length > COMPACT_FACTOR * (this.compactedBytes + HEADER.length)) {
          // The outbox already holds what `text` records, so the compacted file covers it.
          await this.handle?.close();
          this.handle = undefined;
          this.writeCompacted();
          continue;
        }
        this.handle ??= await open(this.path, 'a', 0o600);
        await this.handle.write(text);
        this.fileBytes += text.length;
      } catch (error) {
        this.fail(error);
      }
    }
    this.writing = undefined;
  }

  /** Replaces the log, atomically, with the present: the live tasks and the undelivered statuses. */
  private writeCompacted(): void {
    const lines = [HEADER];
    for (const entry of this.entries()) lines.push(statusLine(entry));
    for (const [taskId, executionId] of this.live) lines.push(liveLine(taskId, executionId));
    for (const note of this.notes.values()) lines.push(note);
    const text = lines.join('');
    const temporary = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temporary, text, { mode: 0o600 });
    renameSync(temporary, this.path);
    this.fileBytes = text.length;
    this.buffered = [];
  }

  private fail(error: unknown): void {
    this.disabled = true;
    this.buffered = [];
    void this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    this.log.warn(
      { path: this.path, err: errorMessage(error) },
      'Cannot write the worker journal; statuses and running tasks will not survive a crash (set --state-dir to a writable directory)',
    );
  }
}
