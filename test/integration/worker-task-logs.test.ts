// Task logs end to end: the real worker (direct backend, a shell script as the
// agent) against the fake dispatch server and a stand-in identity server and
// collector. What a task prints reaches the collector as the Go worker sends
// it, never with a secret in it, and never at the cost of the task.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { goJsonEscape, goQueryEscape } from '../../src/observability/task-logs/redaction.js';
import { API_KEY } from '../support/direct-worker.js';
import { shellTask, startShellAgentWorker, type ShellAgentHarness } from '../support/shell-agent-worker.js';
import { TelemetryStub } from '../support/telemetry-stub.js';
import { tempDir } from '../support/worker-process.js';

let harness: ShellAgentHarness | undefined;
let stub: TelemetryStub | undefined;
const dirs: { cleanup: () => void }[] = [];
afterEach(async () => {
  await harness?.close();
  harness = undefined;
  await stub?.close();
  stub = undefined;
  for (const dir of dirs.splice(0)) dir.cleanup();
});

async function start(
  options: { args?: string[]; directYaml?: string; env?: Record<string, string> } = {},
): Promise<{ h: ShellAgentHarness; s: TelemetryStub }> {
  stub = await TelemetryStub.start();
  harness = await startShellAgentWorker({ ...options, args: ['--server-root-url', stub.url, ...(options.args ?? [])] });
  await harness.server.waitForConnection();
  return { h: harness, s: stub };
}

/** A task whose agent runs `command`, with logs asked for. */
function loggedTask(id: string, command: string, env: Record<string, string> = {}): Record<string, unknown> {
  const task = shellTask(id, command, { env: { WARP_API_KEY: `task-key-${id}`, WARP_WORKLOAD_TOKEN: `workload-token-${id}`, ...env } });
  return { ...task, telemetry_collection: { endpoint: stub!.endpoint, logging_enabled: true, tracing_enabled: false } };
}

const terminal = (h: ShellAgentHarness, id: string) => h.server.messagesFor(id).filter((m) => m.type === 'task_completed' || m.type === 'task_failed');

describe('task logs on the direct backend', () => {
  it('exports the agent’s stdout and stderr with the Go worker’s resource, as the task identity, before the terminal status', async () => {
    const { h, s } = await start({ args: ['-e', 'BACKEND_ONLY=private-backend-value'] });
    h.server.assign(loggedTask('logs-1', 'echo "to stdout $BACKEND_ONLY"; echo "to stderr" >&2'));
    await h.server.waitForMessage('task_completed', 'logs-1');
    // The records went out before the status was sent.
    expect(s.bodies('agent.stdout')).toEqual(['to stdout [REDACTED]']);
    expect(s.bodies('agent.stderr')).toEqual(['to stderr']);
    const record = s.records[0]!;
    expect(record.resource).toEqual({
      'service.name': 'oz-agent-worker',
      'worker.id': 'shell-agent',
      'worker.backend': 'direct',
      run_id: 'logs-1',
      execution_id: 'exec-logs-1',
    });
    for (const r of s.records) {
      expect(Object.keys(r.attributes)).toEqual(['log.source']);
    }
    expect(s.identityCalls[0]!.headers).toMatchObject({
      authorization: 'Bearer task-key-logs-1',
      'x-warp-cloud-agent-id': 'logs-1',
      'x-warp-ambient-workload-token': 'workload-token-logs-1',
    });
    expect(s.collectorCalls.every((c) => c.headers.authorization === 'Bearer issued-1')).toBe(true);
    expect(s.allText()).not.toContain('private-backend-value');
    expect(terminal(h, 'logs-1')).toHaveLength(1);
  });

  it('exports setup and teardown output as hook.stdout and hook.stderr, and redacts what setup wrote to the env file', async () => {
    const { h, s } = await start({
      directYaml: [
        `setup_command: 'echo setup-says-hi; echo setup-warns >&2; echo GENERATED=generated-credential-xyz >> "$OZ_ENVIRONMENT_FILE"'`,
        `teardown_command: 'echo teardown-says-bye'`,
      ].join('\n'),
    });
    h.server.assign(loggedTask('hooks-1', 'echo "agent sees $GENERATED"'));
    await h.server.waitForMessage('task_completed', 'hooks-1');
    await s_until(s, () => s.bodies('hook.stdout').includes('teardown-says-bye'));
    expect(s.bodies('hook.stdout')).toEqual(['setup-says-hi', 'teardown-says-bye']);
    expect(s.bodies('hook.stderr')).toEqual(['setup-warns']);
    expect(s.bodies('agent.stdout')).toEqual(['agent sees [REDACTED]']);
  });

  it('exports a failing setup’s output before the task_failed', async () => {
    const { h, s } = await start({ directYaml: `setup_command: 'printf "setup failed\\n"; exit 2'` });
    h.server.assign(loggedTask('setup-fail', 'echo never'));
    await h.server.waitForMessage('task_failed', 'setup-fail');
    expect(s.bodies('hook.stdout')).toEqual(['setup failed']);
    expect(terminal(h, 'setup-fail')).toHaveLength(1);
  });

  it('exports nothing, and asks for no identity, when the operator turned task logs off', async () => {
    const { h, s } = await start({ args: ['--collect-task-logs=false'] });
    h.server.assign(loggedTask('off-1', 'echo quiet'));
    await h.server.waitForMessage('task_completed', 'off-1');
    const viaEnv = await startShellAgentWorker({ args: ['--server-root-url', s.url], env: { OZ_COLLECT_TASK_LOGS: 'false' } });
    try {
      await viaEnv.server.waitForConnection();
      viaEnv.server.assign(loggedTask('off-2', 'echo quiet'));
      await viaEnv.server.waitForMessage('task_completed', 'off-2');
    } finally {
      await viaEnv.close();
    }
    expect(s.identityCalls).toHaveLength(0);
    expect(s.collectorCalls).toHaveLength(0);
  });

  it('still completes the task exactly once when the identity call is refused, sending no payload', async () => {
    const { h, s } = await start();
    s.identityMode = 'reject';
    h.server.assign(loggedTask('refused-1', 'echo hello'));
    await h.server.waitForMessage('task_completed', 'refused-1');
    await h.worker.waitForLog((l) => l.msg.startsWith('Task log export failed: task identity request rejected'));
    expect(terminal(h, 'refused-1').map((m) => m.type)).toEqual(['task_completed']);
    expect(s.identityCalls.length).toBeGreaterThanOrEqual(1);
    expect(s.collectorCalls).toHaveLength(0);
    expect(h.worker.output).not.toContain('private credential');
  });

  it('reports a task whose collector never answers, within the bounded flush, keeping memory to the queue', async () => {
    const { h, s } = await start();
    s.collectorMode = 'stall';
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${h.worker.child.pid}/status`, 'utf8'))![1]) * 1024;
    // 40 MiB of output in 1 KiB lines: far more than the queue (1024 records) holds.
    h.server.assign(loggedTask('stalled-1', `i=0; line=$(printf '%01024d' 0); while [ $i -lt 40960 ]; do echo "$line"; i=$((i+1)); done`));
    await h.server.waitForMessage('task_completed', 'stalled-1', 60_000);
    expect(terminal(h, 'stalled-1')).toHaveLength(1);
    expect(rss()).toBeLessThan(200 * 1024 * 1024);
    // The worker goes on: the next task runs and is reported too.
    s.collectorMode = 'dead';
    h.server.assign(loggedTask('dead-1', 'echo hi'));
    await h.server.waitForMessage('task_completed', 'dead-1', 30_000);
  }, 90_000);

  it('exports the last lines before the cancelled status', async () => {
    const { h, s } = await start();
    h.server.assign(loggedTask('cancel-1', 'echo before-cancel; exec sleep 30'));
    await h.server.until(() => h.worker.logs.some((l) => l.msg === 'before-cancel'), 15_000, 'the agent to print');
    h.server.cancel('cancel-1');
    const done = await h.server.waitForMessage('task_completed', 'cancel-1');
    expect(done.data.task_state).toBe('CANCELLED');
    expect(s.bodies('agent.stdout')).toEqual(['before-cancel']);
  });
});

describe('no secret reaches a log record', () => {
  it('redacts every shape of every secret the task and the operator set', async () => {
    const dir = tempDir('shapes');
    dirs.push(dir);
    const plain = 'sk-live-51abcDEF9876';
    const escaped = 'p@ss w/rd&"<q>9876';
    const multi = 'multi-line-first-9876\nmulti-line-second-9876';
    const script = join(dir.path, 'shapes.sh');
    const q = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
    writeFileSync(
      script,
      [
        `printf '%s\\n' "raw $PLAIN"`,
        `printf '%s\\n' "escaped raw $ESCAPED"`,
        `printf '%s\\n' ${q(`url ${goQueryEscape(escaped)} go`)}`,
        `printf '%s\\n' ${q(`json {"k":"${goJsonEscape(escaped)}"}`)}`,
        `printf '%s\\n' ${q(`js ${JSON.stringify(escaped)}`)}`,
        `printf '%s\\n' "multi $MULTI end"`,
        `printf '%s\\n' ${q(`multi json ${goJsonEscape(multi)}`)}`,
        `printf '%s\\n' ${q(`multi url ${goQueryEscape(multi)}`)}`,
        // One secret split across output chunks (two writes with a pause between).
        `printf 'chunked sk-live-'; sleep 0.3; printf '51abcDEF9876 end\\n'`,
        // At line boundaries: a secret that starts a line, one that ends it, one that ends the stream without a newline.
        `printf '%s\\n' "$PLAIN starts"; printf '%s\\n' "ends $PLAIN"`,
        `printf '%s\\n' "$OVERLAP_LONG $OVERLAP_SHORT-tail"`,
        `printf '%s\\n' "keys $WARP_API_KEY $WARP_WORKLOAD_TOKEN"`,
        `printf '%s\\n' "operator $OPERATOR_SECRET"`,
        `printf '%s\\n' "stderr $PLAIN" >&2`,
        `printf '%s' "$PLAIN"`,
      ].join('\n'),
    );
    const { h, s } = await start({ args: ['-e', 'OPERATOR_SECRET=operator-secret-9876'] });
    h.server.assign(
      loggedTask('shapes-1', `sh ${script}`, {
        PLAIN: plain,
        ESCAPED: escaped,
        MULTI: multi,
        OVERLAP_LONG: 'overlap-secret-9876',
        OVERLAP_SHORT: 'overlap-secret',
      }),
    );
    await h.server.waitForMessage('task_completed', 'shapes-1');
    const R = '[REDACTED]';
    expect(s.bodies('agent.stdout')).toEqual([
      `raw ${R}`,
      `escaped raw ${R}`,
      `url ${R} go`,
      `json {"k":"${R}"}`,
      `js "${R}"`,
      `multi ${R}`,
      `${R} end`,
      `multi json ${R}`,
      `multi url ${R}`,
      `chunked ${R} end`,
      `${R} starts`,
      `ends ${R}`,
      `${R} ${R}-tail`,
      `keys ${R} ${R}`,
      `operator ${R}`,
      R,
    ]);
    expect(s.bodies('agent.stderr')).toEqual([`stderr ${R}`]);
    const everything = s.allText();
    for (const secret of [
      plain,
      escaped,
      multi,
      goQueryEscape(escaped),
      goJsonEscape(escaped),
      'multi-line-first-9876',
      'multi-line-second-9876',
      'overlap-secret',
      'operator-secret-9876',
      'task-key-shapes-1',
      'workload-token-shapes-1',
      API_KEY,
    ]) {
      expect(everything).not.toContain(secret);
    }
  });
});

async function s_until(s: TelemetryStub, condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out; the collector has: ${JSON.stringify(s.bodies())}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
