// The README's "connect to Warp" line as a plain (non-root) user: the direct
// backend's default workspace root is the user's data directory, not the Go
// worker's /var/lib/oz/workspaces that only root may create; `doctor` says
// where workspaces will go without creating anything.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY } from '../support/direct-worker.js';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { BIN, FAKE_OZ, REPO_ROOT, WorkerProcess } from '../support/worker-process.js';

const USER = 'oz-it-nonroot';

interface Account {
  uid: number;
  gid: number;
  /** What the account runs: this Node, the package's bin, the stand-in oz CLI, and a PATH directory holding that Node. */
  node: string;
  bin: string;
  fakeOz: string;
  pathDir: string;
  cleanup: () => void;
}

/**
 * The package, this Node and the stand-in oz CLI, copied into a 0755 directory the account owns. The repository may
 * sit in a directory only root can enter (a clone in what `mktemp -d` made), where the account reaches none of them.
 */
function reachableCopies(uid: number, gid: number): Omit<Account, 'uid' | 'gid'> {
  const dir = mkdtempSync(join(tmpdir(), 'oz-nonroot-tools-'));
  chmodSync(dir, 0o755);
  const pathDir = join(dir, 'bin');
  mkdirSync(pathDir);
  const node = join(pathDir, 'node');
  copyFileSync(process.execPath, node);
  const pkg = join(dir, 'package');
  for (const part of ['bin', 'dist', 'package.json']) cpSync(join(REPO_ROOT, part), join(pkg, part), { recursive: true });
  const fakeOz = join(dir, 'fake-oz.mjs');
  copyFileSync(FAKE_OZ, fakeOz);
  chmodSync(fakeOz, 0o755);
  const own = (path: string): void => {
    chownSync(path, uid, gid);
    if (statSync(path).isDirectory()) for (const name of readdirSync(path)) own(join(path, name));
  };
  own(dir);
  return { node, bin: join(pkg, 'bin/oz-worker.js'), fakeOz, pathDir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A non-root account to run as (this one if we are not root, else one created for the test), or why there is none. */
function plainUser(): Account | string {
  const uid = process.getuid?.();
  if (uid === undefined) return 'no uids on this platform';
  if (uid !== 0)
    return { uid, gid: process.getgid!(), node: process.execPath, bin: BIN, fakeOz: FAKE_OZ, pathDir: join(process.execPath, '..'), cleanup: () => {} };
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
  const copies = reachableCopies(id, gid);
  const probe = spawnSync(copies.node, ['-e', `require('fs').accessSync(${JSON.stringify(copies.bin)})`], { uid: id, gid });
  if (probe.status !== 0) {
    copies.cleanup();
    return `${USER} cannot run ${copies.node} or read ${copies.bin} even from a directory of its own`;
  }
  return { uid: id, gid, ...copies };
}

const account = plainUser();
if (typeof account === 'string') console.log(`non-root workspace tests skipped: ${account}`);
afterAll(() => {
  if (typeof account !== 'string') account.cleanup();
});

describe.skipIf(typeof account === 'string')('as a non-root user, with no workspace root configured', () => {
  const { uid, gid, node, bin, fakeOz, pathDir } = account as Account;
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
  const env = () => ({ PATH: `${pathDir}:/usr/bin:/bin`, HOME: home, WARP_API_KEY: API_KEY, OZ_WORKER_STATE_DIR: join(home, 'state') });
  const dataRoot = () => join(home, '.local/share/oz-worker/workspaces');

  it('doctor says the workspaces will be created in the data directory, and creates nothing', () => {
    const result = spawnSync(node, [bin, 'doctor', '--worker-id', 'plain', '--backend', 'direct', '--oz-path', fakeOz, '--web-socket-url', server.url], {
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
    const child = spawn(node, [bin, '--worker-id', 'plain', '--backend', 'direct', '--oz-path', fakeOz, '--web-socket-url', server.url], {
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
      [bin, 'doctor', '--worker-id', 'plain', '--backend', 'direct', '--oz-path', fakeOz, '--workspace-root', chosen, '--web-socket-url', server.url],
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
