// Mount failures show only as events. Each task whose pod kubelet is still
// setting up asks for that pod's events now and then (job-monitor.ts); listing
// them pod by pod would cost one API request per waiting pod, so a burst of a
// thousand tasks on a slow node would add a thousand lists. Instead every pod
// asking shares one list of the namespace's pod Warning events (the only kind
// the classifier reads), made at most once a second.
import type { CoreV1Event } from '@kubernetes/client-node';
import { errorMessage } from '../../errors/error-message.js';
import type { Logger } from '../../log/logger.js';
import type { KubeClient } from './client.js';

/** Warnings about pods: a mount failure is one (reason FailedMount, "MountVolume.SetUp failed"). */
export const POD_WARNINGS_SELECTOR = 'involvedObject.kind=Pod,type=Warning';
export const MIN_LIST_GAP_MS = 1_000;

export class PodWarningEvents {
  /** The list the next callers share, not yet sent. */
  private next: Promise<Map<string, CoreV1Event[]> | undefined> | undefined;
  private lastListAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly client: Pick<KubeClient, 'listEvents'>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The Warning events of the pod with this uid, from a list made for every pod
   * asking at about the same time; undefined when that list failed (said once in the log).
   */
  async of(podUid: string): Promise<CoreV1Event[] | undefined> {
    this.next ??= this.listSoon();
    const events = await this.next;
    return events && (events.get(podUid) ?? []);
  }

  private listSoon(): Promise<Map<string, CoreV1Event[]> | undefined> {
    const wait = Math.max(0, this.lastListAt + MIN_LIST_GAP_MS - this.now());
    return new Promise((resolve) => {
      setTimeout(() => {
        // Callers from here on wait for the list after this one: this one may predate what they saw.
        this.next = undefined;
        this.lastListAt = this.now();
        this.client.listEvents(POD_WARNINGS_SELECTOR).then(
          (events) => resolve(byPod(events)),
          (error: unknown) => {
            this.log.warn({ err: errorMessage(error) }, 'Could not list the events of task pods; mount failures may go unnoticed until their Jobs fail');
            resolve(undefined);
          },
        );
      }, wait);
    });
  }
}

function byPod(events: CoreV1Event[]): Map<string, CoreV1Event[]> {
  const out = new Map<string, CoreV1Event[]>();
  for (const event of events) {
    const uid = event.involvedObject?.uid;
    if (!uid) continue;
    const list = out.get(uid);
    if (list) list.push(event);
    else out.set(uid, [event]);
  }
  return out;
}
