// Status messages waiting for the socket. A message leaves the outbox only when
// the socket has accepted its bytes; messages whose write did not complete go
// back to the front, in order, and are sent again after the next connect.
import type { OutboundMessage } from '../protocol/messages.js';

export interface OutboxEntry {
  seq: number;
  message: OutboundMessage;
}

export class Outbox {
  private pending: OutboxEntry[] = [];
  private inFlight = new Map<number, OutboxEntry>();
  private nextSeq = 1;
  private drainWaiters: Array<() => void> = [];
  private onEnqueue: (() => void) | undefined;
  /** Called after every change of what is pending (the journal persists it). */
  onChange: (() => void) | undefined;

  /** Called whenever something new is waiting (the connection uses it to flush). */
  setListener(listener: (() => void) | undefined): void {
    this.onEnqueue = listener;
  }

  enqueue(message: OutboundMessage): void {
    this.pending.push({ seq: this.nextSeq++, message });
    this.onChange?.();
    this.onEnqueue?.();
  }

  /** Takes every pending entry for writing; each must be settled with `delivered` or `failed`. */
  takeAll(): OutboxEntry[] {
    const taken = this.pending;
    this.pending = [];
    for (const entry of taken) this.inFlight.set(entry.seq, entry);
    return taken;
  }

  delivered(seq: number): void {
    this.inFlight.delete(seq);
    this.onChange?.();
    this.notifyIfDrained();
  }

  /** Returns every unconfirmed entry to the front of the queue, oldest first. */
  requeueInFlight(): void {
    if (this.inFlight.size === 0) return;
    const back = [...this.inFlight.values()].sort((a, b) => a.seq - b.seq);
    this.inFlight.clear();
    this.pending = [...back, ...this.pending];
  }

  get size(): number {
    return this.pending.length + this.inFlight.size;
  }

  /** Messages not yet confirmed written, oldest first (for persistence and diagnostics). */
  snapshot(): OutboundMessage[] {
    return [...this.inFlight.values(), ...this.pending].sort((a, b) => a.seq - b.seq).map((e) => e.message);
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
