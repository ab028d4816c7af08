// One server per state directory: `server.lock` names the process that holds
// it (pid, command, URL). The lock is taken atomically (a complete file is
// hard-linked into place, so nobody ever reads a half-written lock), a lock
// whose process is gone is taken over, and release removes only our own lock.
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE = 'server.lock';

export interface LockHolder {
  pid: number;
  command: string;
  started_at: string;
  url?: string;
}

export class StateDirInUseError extends Error {}

/** Whether a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return Number.isSafeInteger(holder.pid) && holder.pid > 0 ? holder : undefined;
  } catch {
    return undefined;
  }
}

/** The live process holding the state directory, if any. Reads only: safe before anything is written. */
export function liveLockHolder(stateDir: string): LockHolder | undefined {
  const holder = readHolder(join(stateDir, LOCK_FILE));
  return holder && holder.pid !== process.pid && processAlive(holder.pid) ? holder : undefined;
}

export function inUseMessage(stateDir: string, holder: LockHolder): string {
  const where = holder.url ? ` at ${holder.url}` : '';
  return (
    `the state directory ${stateDir} is in use by oz-worker ${holder.command} (pid ${holder.pid}${where}, since ${holder.started_at}); ` +
    `stop that process, or pass another --state-dir (if pid ${holder.pid} is not oz-worker, delete ${join(stateDir, LOCK_FILE)})`
  );
}

export interface StateLock {
  /** Rewrites the lock with what became known after taking it (the URL). */
  update(extra: Partial<LockHolder>): void;
  release(): void;
}

export function acquireStateLock(stateDir: string, command: string): StateLock {
  const path = join(stateDir, LOCK_FILE);
  let holder: LockHolder = { pid: process.pid, command, started_at: new Date().toISOString() };
  const temp = join(stateDir, `.${LOCK_FILE}.${process.pid}`);
  writeFileSync(temp, JSON.stringify(holder), { mode: 0o600 });
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(temp, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw error;
      }
      const current = readHolder(path);
      if (current && processAlive(current.pid) && current.pid !== process.pid) throw new StateDirInUseError(inUseMessage(stateDir, current));
      // Stale (its process is gone) or unreadable: move it aside, then try again.
      const aside = join(stateDir, `.${LOCK_FILE}.stale.${process.pid}`);
      try {
        renameSync(path, aside);
        unlinkSync(aside);
      } catch {
        // Someone else moved it first; the next link attempt decides.
      }
    }
  } finally {
    unlinkSync(temp);
  }
  const ours = (): boolean => readHolder(path)?.pid === process.pid;
  // Two processes that both found the same stale lock: only one of them holds it now.
  if (!ours()) {
    const winner = readHolder(path);
    throw new StateDirInUseError(winner ? inUseMessage(stateDir, winner) : `the state directory ${stateDir} is being taken by another process; try again`);
  }
  const onExit = (): void => release();
  process.on('exit', onExit);
  let released = false;
  function release(): void {
    if (released) return;
    released = true;
    process.off('exit', onExit);
    try {
      if (ours()) unlinkSync(path);
    } catch {
      // Already gone.
    }
  }
  return {
    update(extra) {
      holder = { ...holder, ...extra };
      if (released || !ours()) return;
      // Replaced in one rename: a reader sees the old lock or the new one, never an empty file.
      writeFileSync(temp, JSON.stringify(holder), { mode: 0o600 });
      renameSync(temp, path);
    },
    release,
  };
}
