import type { CoreV1Event } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  FAILURE_EVENTS_TIMEOUT_MS,
  FailureEvents,
  KILLING_SELECTOR,
  MIN_LIST_GAP_MS,
  POD_WARNINGS_SELECTOR,
  PodWarningEvents,
  WARNINGS_SELECTOR,
} from '../../src/backends/kubernetes/pod-events.js';
import { pino } from 'pino';

const warning = (podUid: string, reason: string): CoreV1Event =>
  ({ involvedObject: { kind: 'Pod', uid: podUid }, reason, message: `${reason} of ${podUid}`, type: 'Warning' }) as CoreV1Event;

function harness(respond: () => Promise<CoreV1Event[]> = async () => [warning('a', 'FailedMount'), warning('b', 'FailedMount'), warning('a', 'BackOff')]) {
  const selectors: string[] = [];
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
  const events = new PodWarningEvents(
    {
      listEvents: (selector) => {
        selectors.push(selector);
        return respond();
      },
    },
    log,
  );
  return { events, selectors, lines };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('PodWarningEvents', () => {
  it('answers every pod asking at once from one list of the namespace pod warnings', async () => {
    const { events, selectors } = harness();
    const asked = Promise.all(['a', 'b', 'c'].map((uid) => events.of(uid)));
    await vi.runAllTimersAsync();
    const [a, b, c] = await asked;
    expect(selectors).toEqual([POD_WARNINGS_SELECTOR]);
    expect(a!.map((e) => e.reason)).toEqual(['FailedMount', 'BackOff']);
    expect(b!.map((e) => e.message)).toEqual(['FailedMount of b']);
    expect(c).toEqual([]);
  });

  it('lists at most once a second however often pods ask', async () => {
    const { events, selectors } = harness();
    const first = events.of('a');
    await vi.advanceTimersByTimeAsync(0);
    await first;
    const second = events.of('b');
    const third = events.of('a');
    await vi.advanceTimersByTimeAsync(MIN_LIST_GAP_MS - 10);
    expect(selectors).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(10);
    await Promise.all([second, third]);
    expect(selectors).toHaveLength(2);
  });

  it('asks again for a pod that asks while a list is on its way (that list may predate what it saw)', async () => {
    let release: (events: CoreV1Event[]) => void = () => {};
    const { events, selectors } = harness(() => new Promise((resolve) => (release = resolve)));
    const early = events.of('a');
    await vi.advanceTimersByTimeAsync(0);
    const late = events.of('a');
    release([warning('a', 'FailedMount')]);
    expect(await early).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(MIN_LIST_GAP_MS);
    release([]);
    expect(await late).toEqual([]);
    expect(selectors).toHaveLength(2);
  });

  it('answers undefined when the list fails, and says so once for all pods asking', async () => {
    const { events, lines } = harness(async () => {
      throw new Error('failed to list events: HTTP 403: forbidden');
    });
    const asked = Promise.all(['a', 'b', 'c'].map((uid) => events.of(uid)));
    await vi.runAllTimersAsync();
    expect(await asked).toEqual([undefined, undefined, undefined]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('forbidden');
  });
});

describe('FailureEvents', () => {
  const about = (uid: string, reason: string, type = 'Warning'): CoreV1Event => ({ involvedObject: { uid }, reason, type }) as CoreV1Event;
  const namespace: Record<string, CoreV1Event[]> = {
    [WARNINGS_SELECTOR]: [about('pod-a', 'FailedMount'), about('job-a', 'BackoffLimitExceeded'), about('pod-b', 'Evicted')],
    [KILLING_SELECTOR]: [about('pod-a', 'Killing', 'Normal'), about('pod-c', 'Killing', 'Normal')],
  };

  function failureHarness(respond: (selector: string) => Promise<CoreV1Event[]> = async (selector) => namespace[selector] ?? []) {
    const selectors: string[] = [];
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const events = new FailureEvents(
      {
        listEvents: (selector) => {
          selectors.push(selector);
          return respond(selector);
        },
      },
      log,
    );
    return { events, selectors, lines };
  }

  it('answers every task failing at once from one list of Warnings and one of Killing events', async () => {
    const { events, selectors } = failureHarness();
    const asked = Promise.all([events.of(['pod-a', 'job-a']), events.of(['pod-b']), events.of(['pod-z'])]);
    await vi.runAllTimersAsync();
    const [a, b, z] = await asked;
    expect(selectors.sort()).toEqual([KILLING_SELECTOR, WARNINGS_SELECTOR].sort());
    expect(a!.map((e) => e.reason).sort()).toEqual(['BackoffLimitExceeded', 'FailedMount', 'Killing']);
    expect(b!.map((e) => e.reason)).toEqual(['Evicted']);
    expect(z).toEqual([]);
  });

  it('goes on with the list that answered when the other fails, and says so once', async () => {
    const { events, lines } = failureHarness(async (selector) => {
      if (selector === KILLING_SELECTOR) throw new Error('failed to list events: HTTP 403: forbidden');
      return namespace[selector]!;
    });
    const asked = Promise.all([events.of(['pod-a']), events.of(['pod-b'])]);
    await vi.runAllTimersAsync();
    const [a, b] = await asked;
    expect(a!.map((e) => e.reason)).toEqual(['FailedMount']);
    expect(b!.map((e) => e.reason)).toEqual(['Evicted']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/forbidden.*reported without their recent events|reported without their recent events.*forbidden/);
  });

  it('answers undefined when no list could be read', async () => {
    const { events, lines } = failureHarness(async () => {
      throw new Error('connection refused');
    });
    const asked = events.of(['pod-a']);
    await vi.runAllTimersAsync();
    expect(await asked).toBeUndefined();
    expect(lines).toHaveLength(2);
  });

  it('does not wait longer than its bound for an API server that does not answer', async () => {
    const { events, lines } = failureHarness(() => new Promise(() => {}));
    let answer: unknown = 'pending';
    void events.of(['pod-a']).then((value) => (answer = value));
    await vi.advanceTimersByTimeAsync(FAILURE_EVENTS_TIMEOUT_MS - 1);
    expect(answer).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(answer).toBeUndefined();
    expect(lines.map((line) => JSON.parse(line).err)).toEqual([
      `no answer within ${FAILURE_EVENTS_TIMEOUT_MS} ms`,
      `no answer within ${FAILURE_EVENTS_TIMEOUT_MS} ms`,
    ]);
  });
});
