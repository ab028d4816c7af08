// Finding and stopping every process a task started, including those that left
// its process group and session (`setsid cmd &`, a double fork) and those whose
// parent died (re-parented to init). On Linux a process belongs to a task when
// it is in one of the task's process groups, descends from one of its
// processes, or carries the task's mark in its initial environment (set on
// setup, agent and teardown, inherited by whatever they start, and readable in
// /proc even after the process changed group, session and parent). Elsewhere
// only the process groups are known.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/** The variable that marks a task's processes: `<task mark>.<role>`. */
export const TASK_MARK_VARIABLE = 'OZWORKER_TASK_MARK';

export type ProcessRole = 'setup' | 'agent' | 'teardown';

export function markValue(taskMark: string, role: ProcessRole): string {
  return `${taskMark}.${role}`;
}

/** A process as /proc/<pid>/stat shows it. `start` (clock ticks after boot) tells a pid's reuse apart. */
export interface ProcessStat {
  pid: number;
  ppid: number;
  pgrp: number;
  state: string;
  start: string;
}

/** Parses /proc/<pid>/stat; the command name may hold spaces and parentheses, so fields are counted from the last `)`. */
export function parseProcStat(text: string): ProcessStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number(text.slice(0, text.indexOf(' ')));
  // Fields from the 3rd on: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime
  const fields = text.slice(close + 2).split(' ');
  const start = fields[19];
  if (!Number.isInteger(pid) || fields.length < 20 || start === undefined) return undefined;
  return { pid, ppid: Number(fields[1]), pgrp: Number(fields[2]), state: fields[0]!, start };
}

/** A process recorded so that a later run can tell it is still the same one. */
export interface ProcessIdentity {
  pid: number;
  start: string;
}

/** Which processes make up a task (or a part of it). */
export interface TaskSelector {
  /** Process groups the task's commands lead. */
  groups: readonly number[];
  /** Processes known by identity (checked against their start time). */
  roots: readonly ProcessIdentity[];
  /** Environment entry (`NAME=value` or a `NAME=prefix` ending in `.`) that marks the task's processes. */
  mark: string | undefined;
}

export type StopResult = 'not-running' | 'terminated' | 'killed';

export interface ProcessTable {
  /** Live (non-zombie) processes that belong to the selection, or undefined when it cannot be known (no /proc). */
  members(selector: TaskSelector): Promise<ProcessStat[] | undefined>;
  /** The identity of a running process, when /proc tells it. */
  identify(pid: number): ProcessIdentity | undefined;
}

const isLive = (stat: ProcessStat): boolean => stat.state !== 'Z' && stat.state !== 'X';

/**
 * Decides membership from a snapshot: pure, so the rules are tested without
 * processes. `since` is the task's first pid (0 when unknown: pids wrapped).
 */
export function selectMembers(
  snapshot: readonly ProcessStat[],
  selector: TaskSelector,
  hasMark: (pid: number) => boolean,
  self: number,
  since: number,
): ProcessStat[] {
  const groups = new Set(selector.groups);
  const roots = new Map(selector.roots.map((root) => [root.pid, root.start]));
  const members = new Set<number>();
  for (const stat of snapshot) {
    if (stat.pid === self) continue;
    if (groups.has(stat.pgrp) || roots.get(stat.pid) === stat.start) members.add(stat.pid);
  }
  if (selector.mark !== undefined) {
    // A process that left the task's groups is either still below one of its
    // processes (found as a descendant below) or was orphaned: its parent is
    // then older than the task (init, a subreaper). Only those need their
    // environment read. The worker's own children lead its tasks, unless the
    // worker is PID 1 (a container without init), where orphans come to it.
    for (const stat of snapshot) {
      if (members.has(stat.pid) || stat.pid === self || !isLive(stat)) continue;
      if (since > 0 && stat.ppid >= since) continue;
      if (stat.ppid === self && self !== 1) continue;
      if (hasMark(stat.pid)) members.add(stat.pid);
    }
  }
  // Descendants of members, however far down (parents come before children only by chance, so iterate).
  for (let grew = true; grew; ) {
    grew = false;
    for (const stat of snapshot) {
      if (!members.has(stat.pid) && stat.pid !== self && members.has(stat.ppid)) {
        members.add(stat.pid);
        grew = true;
      }
    }
  }
  return snapshot.filter((stat) => members.has(stat.pid) && isLive(stat));
}

/** Whether an environment block (NUL-separated) holds `entry`, or an entry starting with it when it ends in `.`. */
export function environHasMark(environ: Buffer, entry: string): boolean {
  const needle = Buffer.from(entry);
  const exact = !entry.endsWith('.');
  for (let at = environ.indexOf(needle); at >= 0; at = environ.indexOf(needle, at + 1)) {
    if (at !== 0 && environ[at - 1] !== 0) continue;
    const after = at + needle.length;
    if (!exact || after === environ.length || environ[after] === 0) return true;
  }
  return false;
}

/**
 * Every process of a task was created after its first one, so it has a larger
 * pid, unless pids wrapped around since (`newest`, the pid allocated last, is
 * then the smaller). Skipping older pids keeps a scan to the processes started meanwhile.
 */
function oldestPossiblePid(selector: TaskSelector, newest: number | undefined): number {
  const known = [...selector.groups, ...selector.roots.map((root) => root.pid)];
  if (known.length === 0 || newest === undefined) return 0;
  const first = Math.min(...known);
  return newest >= first ? first : 0;
}

/** The pid allocated last: the last field of /proc/loadavg ("0.20 0.18 0.12 1/80 11206"). */
function newestPid(): number | undefined {
  try {
    const newest = Number(readFileSync('/proc/loadavg', 'latin1').trim().split(' ').at(-1));
    return Number.isInteger(newest) ? newest : undefined;
  } catch {
    return undefined;
  }
}

function readStat(pid: number): ProcessStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return undefined;
  }
}

function readEnviron(pid: number): Buffer | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`);
  } catch {
    return undefined; // gone, or another user's and we are not root
  }
}

/** How long lookups wait to be answered by one shared scan (tasks that end together cost one scan). */
const DEFAULT_BATCH_MS = 20;

interface Lookup {
  selector: TaskSelector;
  resolve: (members: ProcessStat[] | undefined) => void;
}

/**
 * The process table of this machine through /proc. The lookups made within a
 * few milliseconds share one scan, so tasks that end together cost one scan,
 * and a scan never runs in the middle of reporting an outcome. Its reads are
 * synchronous: /proc files are generated in memory, and a scan through the
 * thread pool was measured to slow the next task's start far more than the
 * scan's own few hundred microseconds on the event loop.
 */
export class ProcTable implements ProcessTable {
  private pending: Lookup[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly self = process.pid,
    private readonly batchMs = DEFAULT_BATCH_MS,
  ) {}

  members(selector: TaskSelector): Promise<ProcessStat[] | undefined> {
    return new Promise((resolve) => {
      this.pending.push({ selector, resolve });
      this.timer ??= setTimeout(() => this.scan(), this.batchMs);
    });
  }

  private scan(): void {
    const batch = this.pending;
    this.pending = [];
    this.timer = undefined;
    let names: string[];
    try {
      names = readdirSync('/proc');
    } catch {
      for (const lookup of batch) lookup.resolve(undefined);
      return;
    }
    const newest = newestPid();
    const firstPids = batch.map((lookup) => oldestPossiblePid(lookup.selector, newest));
    const since = Math.min(...firstPids);
    const pids = names
      .filter((name) => name.charCodeAt(0) >= 48 && name.charCodeAt(0) <= 57)
      .map(Number)
      .filter((pid) => pid >= since);
    const snapshot = pids.map(readStat).filter((stat): stat is ProcessStat => stat !== undefined);
    // First learn whose environment the decisions need, then read each of those once.
    const asked = new Set<number>();
    batch.forEach(({ selector }, i) => {
      if (selector.mark !== undefined) selectMembers(snapshot, selector, (pid) => (asked.add(pid), false), this.self, firstPids[i]!);
    });
    const environs = new Map([...asked].map((pid) => [pid, readEnviron(pid)]));
    batch.forEach(({ selector, resolve }, i) => {
      const hasMark = (pid: number): boolean => {
        const environ = environs.get(pid);
        return environ !== undefined && selector.mark !== undefined && environHasMark(environ, selector.mark);
      };
      resolve(selectMembers(snapshot, selector, hasMark, this.self, firstPids[i]!));
    });
  }

  identify(pid: number): ProcessIdentity | undefined {
    const stat = readStat(pid);
    return stat ? { pid, start: stat.start } : undefined;
  }
}

/** Without /proc: the process groups are all we can see; a group counts as live while signal 0 reaches it. */
export class GroupOnlyTable implements ProcessTable {
  members(selector: TaskSelector): Promise<ProcessStat[]> {
    return Promise.resolve(this.groupMembers(selector));
  }

  groupMembers(selector: TaskSelector): ProcessStat[] {
    return selector.groups.filter((group) => signal(-group, 0)).map((group) => ({ pid: -group, ppid: 0, pgrp: group, state: 'R', start: '' }));
  }

  identify(): undefined {
    return undefined;
  }
}

export function defaultProcessTable(): ProcessTable {
  return process.platform === 'linux' ? new ProcTable() : new GroupOnlyTable();
}

/** Sends a signal; false when the target is gone (or not ours). */
function signal(pid: number, name: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}

function signalAll(members: readonly ProcessStat[], groups: readonly number[], name: NodeJS.Signals, skip?: Set<number>): void {
  for (const group of groups) signal(-group, name);
  for (const member of members) {
    if (member.pid <= 0 || skip?.has(member.pid)) continue;
    signal(member.pid, name);
    skip?.add(member.pid);
  }
}

/**
 * Stops every process of the selection: SIGTERM, then SIGKILL to whatever is
 * still alive after `graceMs` (looked up again, so a process forked meanwhile
 * is included). Resolves once none is left or SIGKILL was sent.
 */
export async function stopTaskProcesses(table: ProcessTable, selector: TaskSelector, graceMs: number): Promise<StopResult> {
  const lookUp = async (): Promise<ProcessStat[]> => (await table.members(selector)) ?? new GroupOnlyTable().groupMembers(selector);
  let members = await lookUp();
  if (members.length === 0) return 'not-running';
  const terminated = new Set<number>();
  signalAll(members, selector.groups, 'SIGTERM', terminated);
  const deadline = Date.now() + graceMs;
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    await delay(Math.min(pause, left));
    members = await lookUp();
    if (members.length === 0) return 'terminated';
    // A process that appeared after the first SIGTERM (forked meanwhile) gets one too.
    signalAll(members, [], 'SIGTERM', terminated);
  }
  signalAll(await lookUp(), selector.groups, 'SIGKILL');
  return 'killed';
}
