// The local server's files hold keys and every task: owner-only (0600) whatever
// the umask and the state directory's mode. Real `oz-worker local` and `server`.
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { FAKE_OZ, startWorker, tempDir, type WorkerProcess } from '../support/worker-process.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const FILES = ['server.db', 'server.db-wal', 'server.db-shm', 'admin.key'];
const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe('file modes', () => {
  it('creates server.db, -wal, -shm, admin.key and local.json 0600 under umask 000 in a 0777 state directory', async () => {
    const dir = tempDir('modes');
    cleanups.push(dir.cleanup);
    chmodSync(dir.path, 0o777);
    const local: WorkerProcess = startWorker({
      args: ['local', '--demo', '--listen', '127.0.0.1:0', '--state-dir', dir.path, '--oz-path', FAKE_OZ],
      umask: '000',
    });
    cleanups.push(() => local.stop());
    await local.waitForLog(() => local.output.includes('Demo task completed.'), 30_000).catch(() => undefined);
    expect(local.output).toContain('Demo task completed.');
    const modes = Object.fromEntries(
      [...FILES, 'local.json'].map((name) => [name, existsSync(join(dir.path, name)) ? modeOf(join(dir.path, name)) : 'missing']),
    );
    expect(modes).toEqual(Object.fromEntries([...FILES, 'local.json'].map((name) => [name, '600'])));
  });

  it('tightens files an older version left readable', async () => {
    const first: ServerProcess = await startServerProcess({ umask: '022' });
    const stateDir = first.stateDir;
    // Keep the state directory for the second start: close the process but not the temp dir.
    first.process.signal('SIGTERM');
    await first.process.exited;
    for (const name of ['server.db', 'admin.key']) chmodSync(join(stateDir, name), 0o644);
    const second = startWorker({ args: ['server', '--listen', '127.0.0.1:0', '--state-dir', stateDir], umask: '022' });
    cleanups.push(async () => {
      await second.stop();
      await first.close();
    });
    await second.waitForLog(() => second.output.includes('listening on'), 20_000).catch(() => undefined);
    expect(second.output).toContain('listening on');
    expect(Object.fromEntries(FILES.map((name) => [name, modeOf(join(stateDir, name))]))).toEqual(Object.fromEntries(FILES.map((name) => [name, '600'])));
  });
});
