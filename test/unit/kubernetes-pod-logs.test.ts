// Following the task pod's container logs into the task's log export.
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import type { TaskLogs } from '../../src/task/contract.js';
import { literalEnvValues, MAX_LOG_STREAMS_PER_TASK, PodLogStreams, readableContainers } from '../../src/backends/kubernetes/pod-logs.js';

type Status = { name: string; state: Record<string, unknown> };
const pod = (uid: string, init: Status[], regular: Status[]): V1Pod =>
  ({ metadata: { name: `pod-${uid}`, uid }, status: { initContainerStatuses: init, containerStatuses: regular } }) as unknown as V1Pod;
const running = (name: string): Status => ({ name, state: { running: {} } });
const done = (name: string): Status => ({ name, state: { terminated: { exitCode: 0 } } });
const waiting = (name: string): Status => ({ name, state: { waiting: { reason: 'PodInitializing' } } });

class RecordingLogs implements TaskLogs {
  readonly records: { source: string; attributes: Record<string, string> | undefined; text: string; ended: boolean }[] = [];
  private readonly controller = new AbortController();
  readonly closed = this.controller.signal;
  writer(source: string, attributes?: Readonly<Record<string, string>>) {
    const record = { source, attributes: attributes && { ...attributes }, text: '', ended: false };
    this.records.push(record);
    return {
      write: (chunk: Buffer | string) => void (record.text += chunk.toString()),
      end: () => void (record.ended = true),
    };
  }
  redact(): void {}
  close(): void {
    this.controller.abort();
  }
}

/** A client whose streams print a line and then stay open until stopped, or fail to open when named in `failing`. */
function stubClient(failing: string[] = []) {
  const calls: string[] = [];
  return {
    calls,
    followPodLog: async (podName: string, container: string, onData: (chunk: Buffer) => void, signal: AbortSignal): Promise<void> => {
      calls.push(`${podName}/${container}`);
      if (failing.includes(container)) throw new Error('container not found');
      onData(Buffer.from(`${container} says hi\n`));
      if (container.startsWith('ends')) return;
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
  };
}

const log = await createLogger({ level: 'error' });

describe('PodLogStreams', () => {
  it('opens one stream per running or terminated container, however often the pod is seen (Go test: setup terminated, task running)', () => {
    const logs = new RecordingLogs();
    const client = stubClient();
    const streams = new PodLogStreams(client, logs, log);
    const p = pod('u1', [done('setup')], [running('task')]);
    streams.observe(p);
    streams.observe(p);
    expect(client.calls).toEqual(['pod-u1/setup', 'pod-u1/task']);
    expect(logs.records.map((r) => [r.source, r.attributes, r.text])).toEqual([
      ['pod.setup', { 'k8s.container.name': 'setup', 'k8s.pod.name': 'pod-u1' }, 'setup says hi\n'],
      ['pod.task', { 'k8s.container.name': 'task', 'k8s.pod.name': 'pod-u1' }, 'task says hi\n'],
    ]);
  });

  it('waits for a container to run, and counts a new pod of the task as new', () => {
    const client = stubClient();
    const streams = new PodLogStreams(client, new RecordingLogs(), log);
    streams.observe(pod('u1', [], [waiting('task')]));
    expect(client.calls).toEqual([]);
    streams.observe(pod('u1', [], [running('task')]));
    streams.observe(pod('u2', [], [running('task')]));
    expect(client.calls).toEqual(['pod-u1/task', 'pod-u2/task']);
  });

  it('never opens a failed stream again, and ends its writer', async () => {
    const logs = new RecordingLogs();
    const client = stubClient(['task']);
    const streams = new PodLogStreams(client, logs, log);
    streams.observe(pod('u1', [], [running('task')]));
    await new Promise((resolve) => setImmediate(resolve));
    streams.observe(pod('u1', [], [done('task')]));
    expect(client.calls).toEqual(['pod-u1/task']);
    expect(logs.records[0]!.ended).toBe(true);
  });

  it('opens at most 64 streams per task', () => {
    const client = stubClient();
    const streams = new PodLogStreams(client, new RecordingLogs(), log);
    for (let i = 0; i < 70; i++) streams.observe(pod(`u${i}`, [], [running('task')]));
    expect(client.calls).toHaveLength(MAX_LOG_STREAMS_PER_TASK);
  });

  it('at the end picks up containers not seen yet, lets ended streams finish, and stops the rest', async () => {
    const logs = new RecordingLogs();
    const client = stubClient();
    const streams = new PodLogStreams(client, logs, log);
    streams.observe(pod('u1', [], [running('task')]));
    await streams.finish(async () => [pod('u1', [done('ends-early')], [done('task')])], 50);
    expect(client.calls).toEqual(['pod-u1/task', 'pod-u1/ends-early']);
    expect(logs.records.map((r) => [r.source, r.ended])).toEqual([
      ['pod.task', true],
      ['pod.ends-early', true],
    ]);
  });

  it('stops following once the task’s export is closed', async () => {
    const logs = new RecordingLogs();
    const client = stubClient();
    const streams = new PodLogStreams(client, logs, log);
    streams.observe(pod('u1', [], [running('task')]));
    logs.close();
    await new Promise((resolve) => setImmediate(resolve));
    expect(logs.records[0]!.ended).toBe(true);
    streams.observe(pod('u1', [running('sidecar')], []));
    expect(client.calls).toEqual(['pod-u1/task']);
  });
});

describe('what of a pod is readable and redacted', () => {
  it('lists running and terminated containers, init containers first', () => {
    expect(readableContainers(pod('u', [done('copy'), waiting('setup')], [running('task'), waiting('side')]))).toEqual(['copy', 'task']);
  });

  it('collects every literal env value of every container, never a valueFrom', () => {
    const job = {
      spec: {
        template: {
          spec: {
            initContainers: [{ name: 'setup', env: [{ name: 'A', value: 'init-literal' }] }],
            containers: [
              {
                name: 'task',
                env: [
                  { name: 'B', value: 'task-literal' },
                  { name: 'C', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
                  { name: 'D', value: '' },
                ],
              },
              { name: 'side', env: [{ name: 'E', value: 'template-literal' }] },
            ],
          },
        },
      },
    } as V1Job;
    expect(literalEnvValues(job)).toEqual(['init-literal', 'task-literal', 'template-literal']);
  });
});
