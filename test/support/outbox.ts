import type { Outbox, OutboxEntry } from '../../src/connection/outbox.js';

/** Takes every pending entry, as a connection with an idle socket would. */
export function takeAll(outbox: Outbox): OutboxEntry[] {
  const taken: OutboxEntry[] = [];
  for (let entry = outbox.takeNext(); entry; entry = outbox.takeNext()) taken.push(entry);
  return taken;
}
