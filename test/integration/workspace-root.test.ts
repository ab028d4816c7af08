// The README's "connect to Warp" line as a plain (non-root) user: the direct
// backend's default workspace root is the user's data directory, not the Go
// worker's /var/lib/oz/workspaces that only root may create; `doctor` says
// where workspaces will go without creating anything.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, chownSync, constants, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY } from '../support/direct-worker.js';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { runnableBy } from '../support/other-user.js';
import { WorkerProcess } from '../support/worker-process.js';

const USER = 'oz-it-nonroot';

/** A non-root account to run as: this one if we are not root, else one created for the test. */
function plainUser(): { uid: number; gid: number } | string {
  const uid = process.getuid?.();
  if (uid === undefined) return 'no uids on this platform';
  if (uid !== 0) return { uid, gid: process.getgid!() };
  try {
    execFileSync('id', ['-u', USER], { stdio: 'ignore' });
  } catch {
    try {
      execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER], { stdio: 'ignore' });
    } catch (error) {
      return `useradd ${USER} failed (${(error as Error).message.split('\n')[0]})`;
    }
  }
  const id = Number(execFileSync('id', ['-u', USER], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', USER], { encoding: 'utf8' }));
  return { uid: id, gid };
}

const account = plainUser();
if (typeof account === 'string') console.log(`non-root workspace tests skipped: ${account}`);
// The clone may sit where this user cannot reach it (a 0700 directory): then it runs readable copies.
const files = typeof account === 'string' ? undefined : runnableBy(account);

describe.skipIf(typeof account === 'string')('as a non-root user, with no workspace root configured', () => {
  const { uid, gid } = account as { uid: number; gid: number };
  const { node, bin: BIN, fakeOz: FAKE_OZ } = files!;
  let home: string;
  let server: FakeDispatchServer;
  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'oz-nonroot-home-'));
    chownSync(home, uid, gid);
    server = await FakeDispatchServer.start({ apiKey: API_KEY });
  });
  afterAll(async () => {
    await server.close();
    rmSync(home, { recursive: true, force: true });
  });
  const env = () => ({ PATH: '/usr/bin:/bin', HOME: home, WARP_API_KEY: API_KEY, OZ_WORKER_STATE_DIR: join(home, 'state') });
  const dataRoot = () => join(home, '.local/share/oz-worker/workspaces');

  it('doctor says the workspaces will be created in the data directory, and creates nothing', () => {
    const result = spawnSync(node, [BIN, 'doctor', '--worker-id', 'plain', '--backend', 'direct', '--oz-path', FAKE_OZ, '--web-socket-url', server.url], {
      uid,
      gid,
      cwd: home,
      env: env(),
      encoding: 'utf8',
    });
    expect(result.stdout).toContain(`✔ workspace: ${dataRoot()} will be created (${home} is writable)`);
    expect(existsSync(join(home, '.local'))).toBe(false);
  });

  it('the README line starts the worker, which connects and keeps its workspaces there', async () => {
    const child = spawn(node, [BIN, '--worker-id', 'plain', '--backend', 'direct', '--oz-path', FAKE_OZ, '--web-socket-url', server.url], {
      uid,
      gid,
      cwd: home,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const worker = new WorkerProcess(child);
    try {
      const deadline = Date.now() + 20_000;
      while (!server.handshakes.some((h) => h.workerId === 'plain') && child.exitCode === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(worker.output).not.toContain('permission denied');
      expect(server.handshakes.map((h) => h.workerId)).toContain('plain');
      expect(statSync(dataRoot()).uid).toBe(uid);
      accessSync(dataRoot(), constants.W_OK);
    } finally {
      child.kill('SIGTERM');
      await worker.exited;
    }
  });

  it('--workspace-root puts them where the user says', () => {
    const chosen = join(home, 'my-workspaces');
    const result = spawnSync(
      node,
      [BIN, 'doctor', '--worker-id', 'plain', '--backend', 'direct', '--oz-path', FAKE_OZ, '--workspace-root', chosen, '--web-socket-url', server.url],
      {
        uid,
        gid,
        cwd: home,
        env: env(),
        encoding: 'utf8',
      },
    );
    expect(result.stdout).toContain(`✔ workspace: ${chosen} will be created`);
  });
});
