// `oz-worker service install` on a real systemd: PID 1 of a container booted
// from Debian bookworm (test/infra/systemd/up.sh), the packed package and the
// provisioned Node bound in as a global install would lay them out, and the
// local dispatch server running here. The worker must run as the system user
// install creates, read its config and key, keep its journal in its state
// directory, run a task in a workspace the hardening allows, and — SIGKILLed —
// be restarted by systemd and report the task it lost.
//
// Where systemd cannot boot (no root, no systemd-nspawn, up.sh could not build
// the root filesystem, or OZ_TEST_SYSTEMD=fallback), it says why in one line
// and runs the closest check: the generated unit's ExecStart, as an
// unprivileged user, in a mount namespace with the unit's read-only root,
// writable state directories and private /tmp, through the same task, kill and
// start again.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookUpUser } from '../../src/config/users.js';
import { systemdUnit } from '../../src/service/units.js';
import { startLocalServer, until, type LocalServerHarness } from '../support/local-server.js';
import { BootedSystem, findSystemdRootfs, runCommand, type Run } from '../support/real-systemd.js';
import { REPO_ROOT, tempDir } from '../support/worker-process.js';

const WORKER_ID = 'systemd-worker';
/** The stand-in oz CLI: says who and where it runs; holds while a `hold` file sits next to it. */
const AGENT = `#!/bin/sh
echo "stand-in agent: uid=$(id -u) home=$HOME cwd=$(pwd)"
[ -e "$(dirname "$0")/hold" ] && exec sleep 600
exit 0
`;
const LOST = 'The worker stopped unexpectedly (it was killed or crashed) while this task was running, so the agent was interrupted and its result is unknown.';

/** The package as `npm pack` ships it, unpacked into `dir/package`, plus the stand-in agent. */
function preparePayload(dir: string): void {
  chmodSync(dir, 0o755);
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 }),
  ) as Array<{ filename: string }>;
  execFileSync('tar', ['-xzf', join(dir, packed[0]!.filename), '-C', dir, '--no-same-owner']);
  writeFileSync(join(dir, 'oz'), AGENT, { mode: 0o755 });
}

function configYaml(ozPath: string): string {
  return `worker_id: ${WORKER_ID}\nbackend:\n  direct:\n    oz_path: ${ozPath}\n`;
}

async function seed(server: LocalServerHarness) {
  const user = await server.createUser('service-owner');
  return { user, client: server.as(user.key) };
}

async function connectedWorkers(server: LocalServerHarness): Promise<string[]> {
  const { workers } = await server.admin.request<{ workers: Array<{ worker_id: string }> }>('GET', '/api/v1/workers');
  return workers.map((w) => w.worker_id);
}

const found = process.env.OZ_TEST_SYSTEMD === 'fallback' ? { skip: 'OZ_TEST_SYSTEMD=fallback asked for the closest check' } : findSystemdRootfs();
const payload = tempDir('systemd-payload');
let payloadProblem: string | undefined;
try {
  preparePayload(payload.path);
} catch (error) {
  payloadProblem = `the package could not be packed (npm pack): ${(error as Error).message.split('\n')[0]}`;
}
let system: BootedSystem | undefined;
let bootFailure: string | undefined;
if ('rootfs' in found && !payloadProblem) {
  try {
    system = await BootedSystem.boot(found.rootfs, [
      [payload.path, '/opt/oz-test'],
      [join(payload.path, 'package'), '/usr/local/lib/node_modules/oz-worker'],
      [process.execPath, '/usr/local/bin/node'],
    ]);
  } catch (error) {
    bootFailure = `systemd did not boot in a container here: ${(error as Error).message}`;
  }
}
const fallbackReason = system ? undefined : (('skip' in found ? found.skip : bootFailure) ?? payloadProblem);
const fallbackAccount = process.getuid?.() === 0 ? lookUpUser('nobody') : undefined;
const fallbackProblem =
  fallbackReason &&
  (payloadProblem ??
    (process.getuid?.() !== 0 ? 'it needs root (a mount namespace and another user)' : !fallbackAccount ? 'there is no user nobody here' : undefined));
if (fallbackReason) {
  console.log(
    `real systemd suite: ${fallbackReason}; ${fallbackProblem ? `the closest check is skipped too: ${fallbackProblem} (systemd-analyze verify still runs in test/unit/service-units.test.ts)` : "running the closest check instead (the unit's ExecStart as an unprivileged user under the unit's read-only paths)"}`,
  );
}

afterAll(async () => {
  await system?.shutdown();
  payload.cleanup();
});

describe.runIf(system !== undefined)('service install on systemd (PID 1 in a container)', () => {
  const box = system!;
  let server: LocalServerHarness;
  let client: Awaited<ReturnType<typeof seed>>['client'];
  let serviceUid: number;
  let installOutput: Run;

  const journal = async () => (await box.exec(['journalctl', '--unit', 'oz-worker.service', '--no-pager', '--output', 'cat'])).stdout;
  const show = async (property: string) => (await box.sh(`systemctl show oz-worker.service --property=${property} --value`)).trim();

  beforeAll(async () => {
    server = await startLocalServer();
    const seeded = await seed(server);
    client = seeded.client;
    // As an admin would leave them: the config private to root, the key readable by all.
    await box.sh('mkdir -p /etc/oz-worker && umask 077 && cat > /etc/oz-worker/config.yaml', configYaml('/opt/oz-test/oz'));
    await box.sh('umask 022 && cat > /etc/oz-worker/api-key', `${seeded.user.key}\n`);
    // What `npm install -g` leaves on PATH.
    await box.sh('ln -s ../lib/node_modules/oz-worker/bin/oz-worker.js /usr/local/bin/oz-worker');
    installOutput = await box.exec([
      'oz-worker',
      'service',
      'install',
      '--',
      '--web-socket-url',
      server.server.webSocketUrl,
      '--server-root-url',
      server.server.httpUrl,
    ]);
  }, 90_000);

  afterAll(async () => {
    await server?.close();
  });

  it('creates the system user, gives it its config and key, starts the unit, and says so', async () => {
    expect(installOutput.stderr).toBe('');
    expect(installOutput.code).toBe(0);
    const lines = installOutput.stdout;
    expect(lines).toContain('✔ Installed oz-worker.service');
    expect(lines).toContain('created the system user oz-worker (no login shell, home /var/lib/oz-worker)');
    expect(lines).toContain("/etc/oz-worker/config.yaml: root's, readable by oz-worker");
    expect(lines).toContain("/etc/oz-worker/api-key: root's alone (0600); systemd hands oz-worker a copy at each start");
    expect(lines).toContain('started: oz-worker.service is running');
    expect(lines).toContain('status: oz-worker service status');

    const [name, , uid, , , home, shell] = (await box.sh('getent passwd oz-worker')).trim().split(':');
    expect({ name, home, shell }).toEqual({ name: 'oz-worker', home: '/var/lib/oz-worker', shell: '/usr/sbin/nologin' });
    serviceUid = Number(uid);
    expect(serviceUid).toBeLessThan(1000); // a system account
    expect((await box.sh('stat -c "%U:%G %a" /etc/oz-worker /etc/oz-worker/config.yaml /etc/oz-worker/api-key')).trim().split('\n')).toEqual([
      'root:oz-worker 750',
      'root:oz-worker 640',
      'root:root 600',
    ]);
    expect((await box.sh('stat -c "%U %a" /run/credentials/oz-worker.service/api-key')).trim()).toBe('oz-worker 400');
    expect((await box.exec(['systemd-analyze', 'verify', '/etc/systemd/system/oz-worker.service'])).stderr).toBe('');
  });

  it('runs the worker as that user, connected to the dispatch server', async () => {
    const pid = await show('MainPID');
    expect((await box.sh(`grep '^Uid:' /proc/${pid}/status`)).split(/\s+/)[1]).toBe(String(serviceUid));
    await until(async () => (await connectedWorkers(server)).includes(WORKER_ID), 20_000, 'the service worker to connect');
    // The journal is written where the unit lets it: crash safety is on.
    expect(await journal()).not.toContain('Cannot write the worker journal');
  });

  it('runs a task as the service user, in a workspace under /var/lib/oz/workspaces', async () => {
    const task = await client.submitTask({ prompt: 'first task' });
    const done = await server.waitForTask(client, task.id, ['completed', 'failed'], 30_000);
    expect(done.state).toBe('completed');
    expect(await journal()).toContain(`stand-in agent: uid=${serviceUid} home=/var/lib/oz-worker cwd=/var/lib/oz/workspaces/${task.id}`);
  });

  it('SIGKILLed while a task runs: systemd restarts it and it reports the task it lost, from its journal in /var/lib/oz-worker', async () => {
    writeFileSync(join(payload.path, 'hold'), '');
    try {
      const task = await client.submitTask({ prompt: 'held task' });
      await until(async () => (await journal()).includes(`cwd=/var/lib/oz/workspaces/${task.id}`), 20_000, 'the held agent to start');
      const before = await show('MainPID');
      const journalFiles = (await box.sh('ls -ln /var/lib/oz-worker')).trim();
      expect(journalFiles).toMatch(new RegExp(` ${serviceUid} +${serviceUid} .* worker-${WORKER_ID}-[0-9a-f]+\\.jsonl`));
      await box.sh(`kill -KILL ${before}`);
      await until(async () => (await show('NRestarts')) === '1' && (await show('SubState')) === 'running', 30_000, 'systemd to restart the worker');
      expect(await show('MainPID')).not.toBe(before);
      const failed = await server.waitForTask(client, task.id, ['failed'], 30_000);
      expect(failed.message).toContain(LOST);
      expect(await journal()).toContain("Failed with result 'signal'");
      // The agent died with its worker's cgroup; the new worker removed its workspace.
      await until(async () => !(await box.sh('ls /var/lib/oz/workspaces')).includes(task.id), 10_000, 'the lost task workspace to be removed');
      expect((await box.exec(['ls', '/var/lib/oz-worker/.local'])).code).not.toBe(0);
    } finally {
      rmSync(join(payload.path, 'hold'), { force: true });
    }
  }, 120_000);

  it('uninstall stops and removes the unit, keeping the user and the journal', async () => {
    const run = await box.exec(['oz-worker', 'service', 'uninstall']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('✔ Stopped the worker and removed /etc/systemd/system/oz-worker.service');
    expect(run.stdout).toContain('Kept the user oz-worker');
    expect((await box.exec(['systemctl', 'is-active', 'oz-worker.service'])).stdout.trim()).not.toBe('active');
    expect((await box.exec(['id', 'oz-worker'])).code).toBe(0);
    expect(await box.sh('ls /var/lib/oz-worker')).toMatch(/worker-.*\.jsonl/);
  });
});

describe.runIf(fallbackReason !== undefined && fallbackProblem === undefined)(
  "the unit's ExecStart as its user under its read-only paths (closest check)",
  () => {
    const account = fallbackAccount!;
    let server: LocalServerHarness;
    let client: Awaited<ReturnType<typeof seed>>['client'];
    const state = tempDir('systemd-fallback-state');
    const workspaces = tempDir('systemd-fallback-ws');
    let command: string[];
    let environment: string[];
    let worker: Promise<Run> | undefined;
    let key = '';
    const PAYLOAD = '/var/lib/oz-test';

    /**
     * The unit's sandbox, by hand: /var/lib, /run and /tmp replaced by private
     * tmpfs mounts holding the state directories (bound from here, so they outlive
     * the process), the payload and the credential; then / made read-only, and the
     * ExecStart run as the unit's user with the unit's environment.
     */
    function startBoxed(): Promise<Run> {
      const script = [
        'set -e',
        'mount -t tmpfs -o mode=0755 oz-var-lib /var/lib',
        `mkdir -p /var/lib/oz-worker /var/lib/oz/workspaces ${PAYLOAD}`,
        `mount --bind "$STATE" /var/lib/oz-worker && mount --bind "$WORKSPACES" /var/lib/oz/workspaces && mount --bind "$PAYLOAD_DIR" ${PAYLOAD}`,
        'mount -o remount,bind,ro /var/lib',
        'mount -t tmpfs -o mode=0755 oz-run /run && mkdir -p /run/credentials/oz-worker.service',
        `cat > /run/credentials/oz-worker.service/api-key && chown ${account.uid} /run/credentials/oz-worker.service/api-key && chmod 0400 /run/credentials/oz-worker.service/api-key`,
        'mount -t tmpfs -o mode=1777 oz-private-tmp /tmp',
        'mount -o remount,bind,ro /',
        `exec setpriv --reuid=${account.uid} --regid=${account.gid} --clear-groups -- env -i "$@"`,
      ].join('\n');
      const args = ['--mount', '--propagation', 'private', 'sh', '-c', script, 'boxed', ...environment, ...command];
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', STATE: state.path, WORKSPACES: workspaces.path, PAYLOAD_DIR: payload.path };
      return runCommand('unshare', args, { input: `${key}\n`, env, timeoutMs: 300_000 });
    }

    beforeAll(async () => {
      preparePayload(payload.path);
      copyFileSync(process.execPath, join(payload.path, 'node'));
      chmodSync(join(payload.path, 'node'), 0o755);
      writeFileSync(join(payload.path, 'config.yaml'), configYaml(`${PAYLOAD}/oz`), { mode: 0o644 });
      for (const dir of [state.path, workspaces.path]) {
        chownSync(dir, account.uid, account.gid);
        chmodSync(dir, 0o700);
      }
      server = await startLocalServer();
      const seeded = await seed(server);
      client = seeded.client;
      key = seeded.user.key;
      const unit = systemdUnit({
        nodePath: `${PAYLOAD}/node`,
        binPath: `${PAYLOAD}/package/bin/oz-worker.js`,
        configFile: `${PAYLOAD}/config.yaml`,
        stateDir: '/var/lib/oz-worker',
        workerArgs: ['--web-socket-url', server.server.webSocketUrl, '--server-root-url', server.server.httpUrl],
        key: { kind: 'credential', sourceFile: '/etc/oz-worker/api-key' },
        user: account.name,
        writablePaths: ['/var/lib/oz/workspaces'],
        documentation: [],
        graceSeconds: 25,
      });
      command = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
      // The unit's environment, less what only systemd expands (%C); INVOCATION_ID marks a service as systemd does.
      environment = [...unit.matchAll(/^Environment=(.*)$/gm)].map((m) => m[1]!).filter((entry) => !entry.includes('%'));
      environment.push('INVOCATION_ID=oz-test', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `HOME=/var/lib/oz-worker`);
      worker = startBoxed();
    }, 120_000);

    afterAll(async () => {
      rmSync(join(payload.path, 'hold'), { force: true });
      for (const pid of [...workerPids(), ...agentPids()]) process.kill(pid, 'SIGKILL');
      await worker;
      await server?.close();
      state.cleanup();
      workspaces.cleanup();
    });

    /** Processes of the unit's user whose command line contains `text`. */
    function pidsOf(text: string): number[] {
      return readdirSync('/proc')
        .filter((name) => /^\d+$/.test(name))
        .map(Number)
        .filter((pid) => {
          try {
            return statSync(`/proc/${pid}`).uid === account.uid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(text);
          } catch {
            return false;
          }
        });
    }
    /** The boxed worker (started from the payload path inside the namespace), and the held agent. */
    const workerPids = () => pidsOf(`${PAYLOAD}/package/bin/oz-worker.js`);
    const agentPids = () => pidsOf('sleep\x00600');

    it('connects, runs a task, and after a SIGKILL and a fresh start reports the task it lost, from its journal', async () => {
      await until(async () => (await connectedWorkers(server)).includes(WORKER_ID), 20_000, 'the boxed worker to connect').catch(async (error: Error) => {
        const run = await Promise.race([worker!, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
        throw new Error(`${error.message}${run ? `; it exited ${run.code}: ${run.stdout}${run.stderr}` : ''}`);
      });
      const first = await client.submitTask({ prompt: 'first task' });
      expect((await server.waitForTask(client, first.id, ['completed', 'failed'], 30_000)).state).toBe('completed');

      writeFileSync(join(payload.path, 'hold'), '');
      const held = await client.submitTask({ prompt: 'held task' });
      await until(() => agentPids().length > 0, 20_000, 'the held agent to start');
      expect(readdirSync(state.path).some((name) => name.startsWith(`worker-${WORKER_ID}-`))).toBe(true);
      const pids = workerPids();
      expect(pids).toHaveLength(1);
      process.kill(pids[0]!, 'SIGKILL');
      expect((await worker!).code).not.toBe(0);
      rmSync(join(payload.path, 'hold'), { force: true });
      // What Restart= does: the same command again.
      worker = startBoxed();
      const failed = await server.waitForTask(client, held.id, ['failed'], 30_000);
      expect(failed.message).toContain(LOST);
      // The new worker stopped the agent the killed one left (no cgroup did it here) and removed its workspace.
      await until(() => !readdirSync(workspaces.path).includes(held.id), 20_000, 'the lost task workspace to be removed');
      expect(agentPids()).toEqual([]);
    }, 120_000);
  },
);
