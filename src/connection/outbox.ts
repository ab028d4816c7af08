// Status messages waiting for the socket. A message leaves the outbox only when
// the socket has accepted its bytes; messages whose write did not complete go
// back to the front, in order, and are sent again after the next connect.
// The connection takes entries one at a time while the socket keeps up, so a
// slow reader leaves the backlog here (one object per status), not copied into
// socket buffers.
import type { OutboundMessage } from '../protocol/messages.js';

export interface OutboxEntry {
  seq: number;
  message: OutboundMessage;
}

/** Told of every change to what is pending (the journal records them). */
export interface OutboxObserver {
  enqueued(entry: OutboxEntry): void;
  delivered(seq: number): void;
}

export class Outbox {
  /** Entries before `head` have been taken; the array is compacted now and then. */
  private pending: OutboxEntry[] = [];
  private head = 0;
  private inFlight = new Map<number, OutboxEntry>();
  private nextSeq = 1;
  private drainWaiters: Array<() => void> = [];
  private onEnqueue: (() => void) | undefined;
  observer: OutboxObserver | undefined;

  /** Called whenever something new is waiting (the connection uses it to flush). */
  setListener(listener: (() => void) | undefined): void {
    this.onEnqueue = listener;
  }

  enqueue(message: OutboundMessage): void {
    const entry = { seq: this.nextSeq++, message };
    this.pending.push(entry);
    this.observer?.enqueued(entry);
    this.onEnqueue?.();
  }

  /** Takes the oldest pending entry for writing; it must be settled with `delivered` or come back with `requeueInFlight`. */
  takeNext(): OutboxEntry | undefined {
    if (this.head >= this.pending.length) return undefined;
    const entry = this.pending[this.head]!;
    this.pending[this.head++] = undefined as unknown as OutboxEntry; // let the message be collected once delivered
    if (this.head === this.pending.length) {
      this.pending = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.pending.length) {
      this.pending = this.pending.slice(this.head);
      this.head = 0;
    }
    this.inFlight.set(entry.seq, entry);
    return entry;
  }

  delivered(seq: number): void {
    if (!this.inFlight.delete(seq)) return;
    this.observer?.delivered(seq);
    this.notifyIfDrained();
  }

  /** Returns every unconfirmed entry to the front of the queue, oldest first. */
  requeueInFlight(): void {
    if (this.inFlight.size === 0) return;
    const back = [...this.inFlight.values()].sort((a, b) => a.seq - b.seq);
    this.inFlight.clear();
    this.pending = [...back, ...this.pending.slice(this.head)];
    this.head = 0;
  }

  get size(): number {
    return this.pending.length - this.head + this.inFlight.size;
  }

  /** Entries not yet confirmed written, oldest first (for persistence and diagnostics). */
  entries(): OutboxEntry[] {
    // In-flight entries are older than every pending one, and each group is in order.
    const inFlight = [...this.inFlight.values()].sort((a, b) => a.seq - b.seq);
    return [...inFlight, ...this.pending.slice(this.head)];
  }

  /** Resolves once nothing is pending or in flight. */
  drained(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private notifyIfDrained(): void {
    if (this.size !== 0) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
