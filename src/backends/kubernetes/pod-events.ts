// Events are read for two things: mount failures, which show only as events
// (each task whose pod kubelet is still setting up asks for that pod's events
// now and then, job-monitor.ts), and the recent Warnings of a failed task for
// its failure details (failure-details.ts). Listing them object by object would
// cost one API request per pod asking, so a burst of a thousand tasks on a slow
// node would add a thousand lists. Instead every caller asking shares one list
// of the namespace's events of the kind it reads, made at most once a second.
import type { CoreV1Event } from '@kubernetes/client-node';
import { errorMessage } from '../../errors/error-message.js';
import type { Logger } from '../../log/logger.js';
import type { KubeClient } from './client.js';

/** Warnings about pods: a mount failure is one (reason FailedMount, "MountVolume.SetUp failed"). */
export const POD_WARNINGS_SELECTOR = 'involvedObject.kind=Pod,type=Warning';
/** What a failure's details keep (the Go worker's filter): every Warning (pods and Jobs)... */
export const WARNINGS_SELECTOR = 'type=Warning';
/** ...and kubelet's Normal `Killing` (it stopped a container: deadline, preemption, deletion). */
export const KILLING_SELECTOR = 'reason=Killing';
export const MIN_LIST_GAP_MS = 1_000;
/** How long a failed task's report waits for its events at most; without them by then, it goes without. */
export const FAILURE_EVENTS_TIMEOUT_MS = 3_000;

/** Events by the uid of the object they are about. */
type EventsByObject = Map<string, CoreV1Event[]>;

/**
 * One list of the namespace's events that match `selector`, shared by every
 * caller asking at about the same time: made at most once a second, and answered
 * undefined when it fails (said once in the log) or, with `timeoutMs`, when it
 * takes longer than that.
 */
class SharedEventList {
  /** The list the next callers share, not yet sent. */
  private next: Promise<EventsByObject | undefined> | undefined;
  private lastListAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly client: Pick<KubeClient, 'listEvents'>,
    private readonly log: Logger,
    private readonly selector: string,
    /** What goes missing when a list fails, for the log line. */
    private readonly consequence: string,
    private readonly now: () => number,
    private readonly timeoutMs?: number,
  ) {}

  byObject(): Promise<EventsByObject | undefined> {
    this.next ??= this.listSoon();
    return this.next;
  }

  private listSoon(): Promise<EventsByObject | undefined> {
    const wait = Math.max(0, this.lastListAt + MIN_LIST_GAP_MS - this.now());
    return new Promise((resolve) => {
      setTimeout(() => {
        // Callers from here on wait for the list after this one: this one may predate what they saw.
        this.next = undefined;
        this.lastListAt = this.now();
        let settled = false;
        const settle = (events: EventsByObject | undefined, problem?: string): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (problem !== undefined) this.log.warn({ selector: this.selector, err: problem }, `Could not list the namespace's events; ${this.consequence}`);
          resolve(events);
        };
        const timer = this.timeoutMs === undefined ? undefined : setTimeout(() => settle(undefined, `no answer within ${this.timeoutMs} ms`), this.timeoutMs);
        this.client.listEvents(this.selector).then(
          (events) => settle(byObject(events)),
          (error: unknown) => settle(undefined, errorMessage(error)),
        );
      }, wait);
    });
  }
}

export class PodWarningEvents {
  private readonly list: SharedEventList;

  constructor(client: Pick<KubeClient, 'listEvents'>, log: Logger, now: () => number = Date.now) {
    this.list = new SharedEventList(client, log, POD_WARNINGS_SELECTOR, 'mount failures may go unnoticed until their Jobs fail', now);
  }

  /**
   * The Warning events of the pod with this uid, from a list made for every pod
   * asking at about the same time; undefined when that list failed (said once in the log).
   */
  async of(podUid: string): Promise<CoreV1Event[] | undefined> {
    const events = await this.list.byObject();
    return events && (events.get(podUid) ?? []);
  }
}

/**
 * The events a failed task's details report: the Warnings and `Killing` events
 * of its pod and Job, from two lists shared by every task failing at about the
 * same time. Only failed tasks ask, so a task that succeeds costs no request;
 * a task fails without waiting more than about FAILURE_EVENTS_TIMEOUT_MS for them.
 */
export class FailureEvents {
  private readonly lists: SharedEventList[];

  constructor(client: Pick<KubeClient, 'listEvents'>, log: Logger, now: () => number = Date.now) {
    const consequence = 'failed tasks are reported without their recent events';
    this.lists = [WARNINGS_SELECTOR, KILLING_SELECTOR].map(
      (selector) => new SharedEventList(client, log, selector, consequence, now, FAILURE_EVENTS_TIMEOUT_MS),
    );
  }

  /** The events about any of these objects; undefined when no list could be read. */
  async of(uids: readonly string[]): Promise<CoreV1Event[] | undefined> {
    const answers = await Promise.all(this.lists.map((list) => list.byObject()));
    if (answers.every((answer) => answer === undefined)) return undefined;
    return answers.flatMap((answer) => uids.flatMap((uid) => answer?.get(uid) ?? []));
  }
}

function byObject(events: CoreV1Event[]): EventsByObject {
  const out: EventsByObject = new Map();
  for (const event of events) {
    const uid = event.involvedObject?.uid;
    if (!uid) continue;
    const list = out.get(uid);
    if (list) list.push(event);
    else out.set(uid, [event]);
  }
  return out;
}
