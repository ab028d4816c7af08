// Soak: many short tasks through the real worker on the direct backend. After
// a warm-up, the worker's resident memory must not grow by 10 % or more, it
// must not hold more file descriptors, and it must leave no workspace and no
// agent process behind. CI runs a shortened soak; `npm run soak` runs the
// full 10,000 tasks (SOAK_TASKS overrides either).
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptTask, startScriptAgentWorker, type ScriptAgentHarness } from '../support/script-agent-worker.js';

const TASKS = Number(process.env.SOAK_TASKS ?? 4_000);
const WARM_UP = Math.max(1_000, Math.round(TASKS * 0.1));
const CONCURRENCY = 8;
/**
 * Left alone, V8 collects lazily: RSS climbs for thousands of tasks (to about
 * 200 MiB here) before a full collection, which would hide or fake a leak. With
 * the heap capped, RSS follows what is retained; a leak of even a few KiB per
 * task would exhaust a 48 MiB old space within this run.
 */
const NODE_OPTIONS = process.env.SOAK_NODE_OPTIONS ?? '--max-old-space-size=48 --max-semi-space-size=2';

let harness: ScriptAgentHarness | undefined;
afterEach(async () => {
  await harness?.close();
  harness = undefined;
});

function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Processes whose parent is `pid` (an agent left running, or a zombie never reaped). */
function children(pid: number): string[] {
  const found: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The command name is in parentheses and may hold spaces; fields after it are fixed.
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === pid) found.push(`${name} (${state})`);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

describe('soak', () => {
  it(
    `runs ${TASKS} short tasks without growing memory or descriptors, leaving nothing behind`,
    async () => {
      const h = (harness = await startScriptAgentWorker({ args: ['--max-concurrent-tasks', String(CONCURRENCY)], env: { NODE_OPTIONS: NODE_OPTIONS } }));
      const pid = h.worker.child.pid!;
      let finished = 0;
      let seen = 0;
      /** Counts terminal statuses received since the last look. */
      const countFinished = (): number => {
        const { received } = h.server;
        for (; seen < received.length; seen++) if (received[seen]!.type !== 'task_claimed') finished++;
        return finished;
      };

      /** Keeps CONCURRENCY tasks in flight until `upTo` tasks have finished. */
      let assigned = 0;
      const runUntil = async (upTo: number) => {
        while (finished < upTo) {
          while (assigned < upTo && assigned - finished < CONCURRENCY) {
            h.server.assign(scriptTask(`soak-${assigned}`, assigned % 10 === 9 ? { AGENT_EXIT: '1' } : {}));
            assigned++;
          }
          // Wake for a free slot while there is more to assign, else for the last outcome.
          await h.server.until(
            () => countFinished() >= upTo || (assigned < upTo && assigned - finished < CONCURRENCY),
            30_000,
            `task ${finished + 1} of ${TASKS}`,
          );
          if (h.worker.child.exitCode !== null) throw new Error(`the worker exited:\n${h.worker.output.slice(-3000)}`);
        }
      };

      /** Measures once the finished tasks' agents are reaped and their workspaces removed. */
      const settled = () =>
        h.server.until(() => readdirSync(h.workspaceRoot).length === 0 && children(pid).length === 0, 10_000, 'no workspace and no agent process left');

      await runUntil(WARM_UP);
      await settled();
      const baseline = { rss: rssKiB(pid), fds: openFds(pid) };
      await runUntil(TASKS);
      await settled();
      const after = { rss: rssKiB(pid), fds: openFds(pid) };

      const completed = h.server.received.filter((m) => m.type === 'task_completed').length;
      const failed = h.server.received.filter((m) => m.type === 'task_failed').length;
      expect(completed + failed).toBe(TASKS);
      expect(failed).toBe(Math.floor(TASKS / 10));
      expect(after.rss / baseline.rss, `RSS ${baseline.rss} KiB after warm-up, ${after.rss} KiB at the end`).toBeLessThan(1.1);
      expect(after.fds, 'open file descriptors').toBeLessThanOrEqual(baseline.fds);
      expect(readdirSync(h.workspaceRoot), 'workspaces left behind').toEqual([]);
      expect(children(pid), 'agent processes left behind').toEqual([]);
      expect(h.worker.child.exitCode).toBeNull();
      console.log(
        `soak: ${TASKS} tasks (NODE_OPTIONS=${NODE_OPTIONS}); RSS ${(baseline.rss / 1024).toFixed(1)} → ${(after.rss / 1024).toFixed(1)} MiB after a ${WARM_UP}-task warm-up; ` +
          `${baseline.fds} → ${after.fds} file descriptors`,
      );
    },
    Math.max(120_000, TASKS * 60),
  );
});
