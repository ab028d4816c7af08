// Pure parts of the local runtime: why a task waits, listen addresses, the
// task-output extension's bounds, the state-directory lock, local's worker config.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TaskOutputSender } from '../../src/connection/task-output.js';
import { planWorkerConfig } from '../../src/local/worker-config.js';
import { localWorkspaceRoot } from '../../src/config/locations.js';
import { announcesTaskOutput, capOutputLine, MAX_OUTPUT_LINE_CHARS } from '../../src/protocol/task-output.js';
import { advertisedHost, localHost } from '../../src/server/listen-address.js';
import { acquireStateLock, LOCK_FILE, StateDirInUseError } from '../../src/server/state-lock.js';
import { waitingReason, type WorkerView } from '../../src/server/waiting-reason.js';

const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'oz-unit-local-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('waitingReason', () => {
  const lookup = {
    isMember: (teamId: number, userId: number) => teamId === 7 && userId === 1,
    activePinTeams: (deviceId: string) => (deviceId === 'pinned' ? [7] : []),
  };
  const worker = (over: Partial<WorkerView>): WorkerView => ({
    workerId: 'w',
    identity: { kind: 'team', teamId: 7 },
    activeTasks: 0,
    capacity: undefined,
    draining: false,
    refused: false,
    ...over,
  });
  const userTask = { owner: { type: 'USER' as const, id: 1 }, deviceId: undefined };
  const teamTask = { owner: { type: 'TEAM' as const, id: 7 }, deviceId: undefined };
  const deviceTask = (deviceId: string) => ({ owner: { type: 'TEAM' as const, id: 7 }, deviceId });
  const userWorker = (deviceId?: string) => worker({ workerId: 'u', identity: { kind: 'user', userId: 1, deviceId } });

  it.each([
    ['no workers', userTask, [], 'no worker is connected to the server'],
    [
      'a team worker for a user task',
      userTask,
      [worker({})],
      /^no connected worker runs the tasks of user 1: a user's tasks run on a worker connected with a key of that user/,
    ],
    [
      'a user task pinned to a device that is not connected',
      { ...userTask, deviceId: 'laptop' },
      [userWorker()],
      'device laptop is not connected (its worker connects with --device-id laptop and a key of user 1)',
    ],
    [
      "a user task pinned to another user's device",
      { ...userTask, deviceId: 'laptop' },
      [worker({ workerId: 'v', identity: { kind: 'user', userId: 2, deviceId: 'laptop' } })],
      'device laptop is connected, but not with a key of user 1',
    ],
    ['a user task pinned to its own device', { ...userTask, deviceId: 'laptop' }, [userWorker('laptop')], undefined],
    ['a user worker for a team task', teamTask, [userWorker()], 'no connected worker runs the tasks of team 7: connect one with a key of that team'],
    ["another team's worker", teamTask, [worker({ identity: { kind: 'team', teamId: 8 } })], /^no connected worker runs the tasks of team 7/],
    ['device not connected', deviceTask('pinned'), [worker({})], /^device pinned is not connected/],
    ['device without a pin', deviceTask('bare'), [userWorker('bare')], 'device bare has no active pin for team 7'],
    [
      'at capacity',
      userTask,
      [userWorker(), worker({})].map((w) => ({ ...w, activeTasks: 2, capacity: 2 })),
      'every worker that may run it is unavailable: u is at capacity (2 of 2 tasks)',
    ],
    [
      'draining and refused',
      teamTask,
      [worker({ workerId: 'a', draining: true }), worker({ workerId: 'b', refused: true })],
      'every worker that may run it is unavailable: a is shutting down; b rejected this task',
    ],
    ['a free worker', userTask, [userWorker()], undefined],
    ['a pinned device', deviceTask('pinned'), [userWorker('pinned')], undefined],
    ['capacity not yet known', teamTask, [worker({ activeTasks: 5 })], undefined],
  ])('%s', (_name, task, workers, expected) => {
    const reason = waitingReason(task, workers, lookup);
    if (expected instanceof RegExp) expect(reason).toMatch(expected);
    else expect(reason).toBe(expected);
  });
});

describe('listen addresses', () => {
  const interfaces = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }],
    eth0: [
      { address: 'fe80::1', family: 'IPv6', internal: false },
      { address: '2001:db8::5', family: 'IPv6', internal: false },
      { address: '192.168.1.5', family: 'IPv4', internal: false },
    ],
  } as unknown as NodeJS.Dict<import('node:os').NetworkInterfaceInfo[]>;
  it.each([
    ['0.0.0.0', interfaces, '192.168.1.5'],
    ['::', interfaces, '192.168.1.5'],
    ['::', { eth0: [interfaces.eth0![0]!, interfaces.eth0![1]!] }, '2001:db8::5'],
    ['0.0.0.0', { lo: interfaces.lo }, '127.0.0.1'],
    ['10.0.0.2', interfaces, '10.0.0.2'],
    ['127.0.0.1', interfaces, '127.0.0.1'],
  ])('%s is advertised as a reachable address', (host, list, expected) => expect(advertisedHost(host, list)).toBe(expected));
  it.each([
    ['0.0.0.0', '127.0.0.1'],
    ['::', '::1'],
    ['10.0.0.2', '10.0.0.2'],
  ])('clients on this machine reach %s at %s', (host, expected) => expect(localHost(host)).toBe(expected));
});

describe('task-output extension', () => {
  it.each([
    ['task-output', true],
    ['other, Task-Output', true],
    [['x', 'task-output'], true],
    ['task-outputs', false],
    [undefined, false],
  ])('header %j announces task output: %s', (header, expected) => expect(announcesTaskOutput(header as string)).toBe(expected));

  it('cuts a long line to the frame limit and says so', () => {
    const cut = capOutputLine('z'.repeat(10_000));
    expect(cut).toHaveLength(MAX_OUTPUT_LINE_CHARS);
    expect(cut.endsWith('[…line cut]')).toBe(true);
    expect(capOutputLine('short')).toBe('short');
  });

  it('sends nothing unless enabled, scrubs, batches per task, and stops at the per-task budget with one marker', () => {
    const frames: { task_id: string; lines: { stream: string; text: string }[] }[] = [];
    let enabled = false;
    const sender = new TaskOutputSender(
      {
        enabled: () => enabled,
        send: (text) => frames.push((JSON.parse(text) as { data: never }).data) > 0,
        scrub: (line) => line.replace('s3cret', '[redacted]'),
      },
      100,
    );
    sender.line('a', 'stdout', 'before the announcement');
    sender.flush();
    expect(frames).toEqual([]);
    enabled = true;
    sender.line('a', 'stdout', 'token s3cret');
    sender.line('b', 'stderr', 'other task');
    sender.line('a', 'stdout', 'x'.repeat(90));
    sender.line('a', 'stdout', 'never sent');
    sender.flush();
    expect(frames).toEqual([
      {
        task_id: 'a',
        lines: [
          { stream: 'stdout', text: 'token [redacted]' },
          { stream: 'stdout', text: "[output beyond 100 bytes is not sent; the worker's log has all of it]" },
        ],
      },
      { task_id: 'b', lines: [{ stream: 'stderr', text: 'other task' }] },
    ]);
  });
});

describe('state-directory lock', () => {
  it('refuses a second holder, takes over a dead one, and removes only its own lock', () => {
    const dir = tempDir();
    const lock = acquireStateLock(dir, 'server');
    lock.update({ url: 'http://127.0.0.1:1' });
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, command: 'server', url: 'http://127.0.0.1:1' });
    lock.release();

    // A lock left by a process that is gone.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: dead, command: 'local', started_at: 'then' }));
    const taken = acquireStateLock(dir, 'local');
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid).toBe(process.pid);
    taken.release();

    // A live holder (our parent stands in for another oz-worker).
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid, command: 'local', started_at: 'now', url: 'http://127.0.0.1:2' }));
    expect(() => acquireStateLock(dir, 'server')).toThrow(StateDirInUseError);
    expect(() => acquireStateLock(dir, 'server')).toThrow(`is in use by oz-worker local (pid ${process.ppid} at http://127.0.0.1:2, since now)`);
  });
});

describe("local's worker config", () => {
  it('gives a non-direct backend no file, so the backend reports what it misses', async () => {
    const stateDir = tempDir();
    expect(await planWorkerConfig({ backend: 'docker', configFile: undefined, stateDir })).toEqual({
      backend: 'docker',
      args: ['--backend', 'docker'],
      fileSetsOzPath: false,
    });
  });

  it('adds the workspace root to a direct --config-file that has none, and passes any other file through', async () => {
    const stateDir = tempDir();
    const own = join(stateDir, 'own.yaml');
    writeFileSync(own, 'worker_id: mine # kept\nbackend:\n  direct:\n    oz_path: /opt/oz\n');
    const plan = await planWorkerConfig({ backend: undefined, configFile: own, stateDir });
    expect(plan).toEqual({ backend: 'direct', args: ['--config-file', join(stateDir, 'local-worker.yaml')], fileSetsOzPath: true });
    const merged = readFileSync(join(stateDir, 'local-worker.yaml'), 'utf8');
    expect(merged).toContain('worker_id: mine # kept');
    expect(merged).toContain(`workspace_root: ${localWorkspaceRoot(stateDir)}`);
    expect(localWorkspaceRoot(stateDir).startsWith(stateDir)).toBe(false);

    const docker = join(stateDir, 'docker.yaml');
    writeFileSync(docker, 'backend:\n  docker:\n    volumes: ["/a:/b"]\n');
    expect(await planWorkerConfig({ backend: undefined, configFile: docker, stateDir })).toEqual({
      backend: 'docker',
      args: ['--config-file', docker],
      fileSetsOzPath: false,
    });
    // No block: local's default (direct) is said explicitly, as the worker alone would pick docker.
    const plain = join(stateDir, 'plain.yaml');
    writeFileSync(plain, 'worker_id: x\n');
    expect((await planWorkerConfig({ backend: undefined, configFile: plain, stateDir })).args).toEqual([
      '--config-file',
      join(stateDir, 'local-worker.yaml'),
      '--backend',
      'direct',
    ]);
  });
});
