import type { CoreV1Event } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MIN_LIST_GAP_MS, POD_WARNINGS_SELECTOR, PodWarningEvents } from '../../src/backends/kubernetes/pod-events.js';
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
