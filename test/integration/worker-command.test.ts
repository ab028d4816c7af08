// The real worker (through its bin) on the command backend, with shell
// scripts as dispatch and cancel commands.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assignment, FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { startWorker, tempDir, type WorkerProcess } from '../support/worker-process.js';

const API_KEY = 'wk_command_it_secret_4567';
const SECRET = 'ghp_dispatched_task_secret';

describe('worker on the command backend', () => {
  let server: FakeDispatchServer;
  let worker: WorkerProcess;
  let dir: { path: string; cleanup: () => void };
  const rec = (name: string) => join(dir.path, name);

  beforeAll(async () => {
    server = await FakeDispatchServer.start({ apiKey: API_KEY });
    dir = tempDir('command-it');
    const script = (name: string, body: string) => {
      writeFileSync(rec(name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      return rec(name);
    };
    const dispatch = script(
      'dispatch.sh',
      `cat > "${dir.path}/$OZ_RUN_ID.json"
cat /proc/$$/environ > "${dir.path}/$OZ_RUN_ID.env"
echo "dispatching $OZ_RUN_ID"
case "$OZ_RUN_ID" in fail-*) echo "remote runtime refused: quota exceeded" >&2; exit 5;; esac`,
    );
    const cancel = script('cancel.sh', `echo "$OZ_RUN_ID $OZ_EXECUTION_ID $OZ_WORKER_BACKEND" >> "${dir.path}/cancelled"`);
    const config = rec('config.yaml');
    writeFileSync(
      config,
      [
        'worker_id: cmd-it',
        'backend:',
        '  command:',
        `    dispatch_command: "${dispatch}"`,
        `    cancel_command: "${cancel}"`,
        '    dispatch_timeout: 10s',
        '    environment:',
        '      - name: OPERATOR_VAR',
        '        value: ok',
      ].join('\n'),
    );
    worker = startWorker({ args: ['--config-file', config, '--web-socket-url', server.url], env: { WARP_API_KEY: API_KEY } });
    await server.waitForConnection();
  });

  afterAll(async () => {
    await worker.stop();
    await server.close();
    dir.cleanup();
  });

  it('dispatches the payload on stdin and sends no terminal message', async () => {
    server.assign(assignment('run-1', { task: { owner: { Type: 'TEAM', Id: 1 } }, env_vars: { GITHUB_ACCESS_TOKEN: SECRET } }));
    await worker.waitForLog((l) => l.taskId === 'run-1' && l.msg === 'Task handed off; its runtime reports completion');
    const payload = JSON.parse(readFileSync(rec('run-1.json'), 'utf8')) as Record<string, unknown>;
    expect(payload).toMatchObject({
      version: 1,
      run_id: 'run-1',
      execution_id: 'exec-run-1',
      worker_id: 'cmd-it',
      docker_image: 'ubuntu:22.04',
      base_args: [
        'agent',
        'run',
        '--share',
        'team:edit',
        '--task-id',
        'run-1',
        '--sandboxed',
        '--server-root-url',
        'https://app.warp.dev',
        '--idle-on-complete',
      ],
      env: { GITHUB_ACCESS_TOKEN: SECRET, TASK_ID: 'run-1' },
      sidecars: null,
    });
    const env = readFileSync(rec('run-1.env'), 'utf8').split('\0');
    expect(env).toEqual(expect.arrayContaining(['OZ_RUN_ID=run-1', 'OZ_EXECUTION_ID=exec-run-1', 'OZ_WORKER_BACKEND=command', 'OPERATOR_VAR=ok']));
    expect(env.join('\n')).not.toContain(SECRET);
    expect(env.join('\n')).not.toContain(API_KEY);
    expect((await worker.waitForLog((l) => l.msg === 'dispatching run-1')).taskId).toBe('run-1');
    expect(server.messagesFor('run-1').map((m) => m.type)).toEqual(['task_claimed']);
  });

  it('runs the cancel command for a handed-off task', async () => {
    server.assign(assignment('run-2'));
    await worker.waitForLog((l) => l.taskId === 'run-2' && l.msg === 'Task handed off; its runtime reports completion');
    server.cancel('run-2');
    await server.until(() => existsSync(rec('cancelled')) && readFileSync(rec('cancelled'), 'utf8').includes('run-2'), 10_000, 'the cancel command');
    expect(readFileSync(rec('cancelled'), 'utf8')).toBe('run-2 exec-run-2 command\n');
    expect(server.messagesFor('run-2').map((m) => m.type)).toEqual(['task_claimed']);
  });

  it('reports a failed dispatch with the end of its stderr', async () => {
    server.assign(assignment('fail-1'));
    const failed = await server.waitForMessage('task_failed', 'fail-1');
    expect(failed.data).toEqual({
      task_id: 'fail-1',
      execution_id: 'exec-fail-1',
      message: 'Failed to execute task: dispatch command failed: exit status 5; stderr: remote runtime refused: quota exceeded',
      failure_reason: 'dispatch_command',
    });
  });

  it('keeps the task secret out of its logs', () => {
    expect(worker.output).toContain('run-1');
    expect(worker.output).not.toContain(SECRET);
    expect(worker.output).not.toContain(API_KEY);
  });
});
