// A lock on the shared test cluster (plain TypeScript, so the benchmark can load it with Node's type stripping).
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
/**
 * One test at a time on the shared cluster, across test files and processes:
 * some tests kill the API server or compact etcd, which would break whatever
 * else runs then. A lock directory holding the owner's pid; a dead owner's lock
 * is taken over.
 */
export async function lockCluster(cacheDir: string = process.env.OZ_TEST_CACHE ?? '/root/.cache/oz-worker-test', timeoutMs = 15 * 60_000): Promise<() => void> {
  const dir = join(cacheDir, 'kube/test-lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'pid'), String(process.pid));
      return () => rmSync(dir, { recursive: true, force: true });
    } catch {
      let owner = Number.NaN;
      try {
        owner = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      } catch {
        // being created or removed right now
      }
      if (Number.isInteger(owner) && owner > 0 && !isAlive(owner)) rmSync(dir, { recursive: true, force: true });
      if (Date.now() > deadline) throw new Error(`the test cluster stayed locked by pid ${owner} for ${timeoutMs} ms (${dir})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
