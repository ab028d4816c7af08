// The README and the pages it sends a newcomer to, run as a newcomer runs them:
// every line of their plain `sh` blocks (test/support/doc-blocks.ts lists the
// pages and the marks of blocks run elsewhere or not at all), on a fresh HOME
// (so the platform's default state directory starts empty), through the bin, on
// a terminal where the output differs, with bounded waits; each case asserts
// what the page says the line does. A line with no case, or a case whose line is
// gone, fails the coverage test, so the pages stay honest.
//
// Changes from the text, and why: `oz-worker` is the bin of the install under
// test (`npx oz-worker` in a clone, as the README says); servers listen on port 0
// instead of 7317/7400 so parallel runs cannot collide; `...` and `<id>` are
// filled in; npm runs with `offline=true` (loopback only, the cache holds
// everything), packs without scripts (dist/ is built, and other tests run from
// it) and installs globally into a prefix of its own, not the machine's; the Warp
// URL is reached through a recording proxy on loopback that refuses the tunnel.
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfigText } from '../../src/config/load-file.js';
import { RunningCli, runCli, type CliResult } from '../support/cli.js';
import { BLOCK_MARKS, commandBlocks, linesMarked, normalise, RUN_BLOCKS, RUN_PAGES } from '../support/doc-blocks.js';
import { BIN, REPO_ROOT, tempDir } from '../support/worker-process.js';

// ---- the pages' command lines --------------------------------------------------

const RUN_HERE = linesMarked('');
const CLAIMED = new Set<string>();
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** A page line a case runs; the text must be the page's, comment included (the comment is the promise). */
function readme(text: string): string {
  const line = normalise(text);
  CLAIMED.add(line);
  return line;
}

interface ParsedLine {
  env: Record<string, string>;
  words: string[];
}

/** Splits a command line into words the way sh would for these simple lines (quotes, a trailing comment, VAR=value prefixes). */
function parseLine(line: string): ParsedLine {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const close = line.indexOf(c, i + 1);
      if (close < 0) throw new Error(`unbalanced quote in ${line}`);
      word = (word ?? '') + line.slice(i + 1, close);
      i = close;
    } else if (c === ' ') {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === '#' && word === undefined) {
      break;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (word !== undefined) words.push(word);
  const env: Record<string, string> = {};
  while (words.length > 0 && /^[A-Z_][A-Z0-9_]*=/.test(words[0]!)) {
    const [name, ...value] = words.shift()!.split('=');
    env[name!] = value.join('=');
  }
  return { env, words };
}

// ---- how a user's machine looks ---------------------------------------------------

const NODE_DIR = dirname(process.execPath);
/** The machine's own PATH (its node and npm), plus the Node the tests run with for the bin's shebang. */
const SYSTEM_PATH = `/usr/local/bin:/usr/bin:/bin:${NODE_DIR}`;
// biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escape sequences start with ESC
const stripTerminal = (text: string): string => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');

const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}, 180_000);

/** A fresh HOME, readable by an unprivileged user too. */
function freshHome(): string {
  const dir = tempDir('readme-home');
  cleanups.push(dir.cleanup);
  chmodSync(dir.path, 0o755);
  return dir.path;
}

/**
 * Processes whose command line or environment mentions `text` (what a test started and should have stopped). Each
 * case runs its processes with its own HOME, which their children inherit, so cases running side by side are told apart.
 */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (cmdline.includes(text) || environ.includes(`HOME=${text}`)) found.push(`${pid}: ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

async function noneLeft(text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (processesMentioning(text).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(processesMentioning(text)).toEqual([]);
}

/** A CONNECT proxy on loopback that records each tunnel asked for and refuses it: nothing leaves the machine. */
async function refusingProxy(): Promise<{ url: string; tunnels: string[] }> {
  const tunnels: string[] = [];
  const server: Server = createServer((_request, response) => response.writeHead(502).end());
  server.on('connect', (request, socket) => {
    tunnels.push(request.url ?? '');
    socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, tunnels };
}

/** How `oz-worker` is spelled where the user is, and the environment it runs in. */
interface Install {
  name: string;
  /** argv prefix that stands for `oz-worker`. */
  bin: string[];
  /** What a user types for `oz-worker` there: `npx oz-worker` in a clone, `oz-worker` once installed. */
  typed: string[];
  /** The working directory (where `npx oz-worker` resolves to this install). */
  dir: string;
  path: string;
}

const CLONE: Install = { name: 'the clone', bin: [process.execPath, BIN], typed: ['npx', 'oz-worker'], dir: REPO_ROOT, path: SYSTEM_PATH };

/** A directory of its own holding the stand-in `oz` CLI, to put first on PATH. */
function standInOz(home: string): string {
  const dir = join(home, 'oz-cli');
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(REPO_ROOT, 'examples/echo-agent/oz'), join(dir, 'oz'));
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'oz'), 0o755);
  return dir;
}

const NOBODY = 65534;
let userTools: string | undefined;
/**
 * What an unprivileged user needs to run a case, where that user can reach it: a copy of this Node and of the
 * stand-in `oz` CLI in a 0755 directory the user owns. The tests may run from a clone inside a directory only root
 * can enter (as `mktemp -d` makes), where neither this Node nor the repository's files are reachable to another user.
 */
function toolsForNobody(): string {
  if (userTools) return userTools;
  const dir = tempDir('readme-user-tools');
  cleanups.push(dir.cleanup);
  chmodSync(dir.path, 0o755);
  copyFileSync(process.execPath, join(dir.path, 'node'));
  chmodSync(join(dir.path, 'node'), 0o755);
  standInOz(dir.path);
  for (const path of [dir.path, join(dir.path, 'node'), join(dir.path, 'oz-cli'), join(dir.path, 'oz-cli/oz')]) chownSync(path, NOBODY, NOBODY);
  userTools = dir.path;
  return dir.path;
}

/** The README line as argv for `install`, with placeholders filled in and the port made free. */
function argvOf(line: string, install: Install, fill: Record<string, string> = {}): ParsedLine {
  const { env, words } = parseLine(line);
  const filled = words.map((word) => fill[word] ?? word);
  if (filled[0] !== 'oz-worker') throw new Error(`not an oz-worker line: ${line}`);
  const args = filled.slice(1);
  if (args[0] === 'local' || args[0] === 'server') {
    const at = args.indexOf('--listen');
    if (at < 0) args.push('--listen', '127.0.0.1:0');
    else args[at + 1] = args[at + 1]!.replace(/:\d+$/, ':0');
  }
  return { env, words: [...install.bin, ...args] };
}

function run(
  line: string,
  install: Install,
  home: string,
  fill: Record<string, string> = {},
  timeoutMs = 60_000,
  extraEnv: Record<string, string> = {},
): Promise<CliResult> {
  const { env, words } = argvOf(line, install, fill);
  return runCli(words.slice(1), { command: [words[0]!], env: { PATH: install.path, ...env, ...extraEnv, HOME: home }, cwd: install.dir, timeoutMs }).then(
    (result) => ({
      ...result,
      stdout: stripTerminal(result.stdout),
    }),
  );
}

function start(line: string, install: Install, home: string, options: { tty?: boolean; env?: Record<string, string> } = {}): RunningCli {
  const { env, words } = argvOf(line, install);
  const running = new RunningCli(words, { env: { PATH: install.path, ...env, ...options.env, HOME: home }, cwd: install.dir, tty: options.tty ?? true });
  cleanups.push(() => running.kill());
  return running;
}

const shown = (running: RunningCli): string => stripTerminal(running.output);
/** Waits until what the user sees (colours and carriage returns removed) shows `pattern`. */
async function waitFor(running: RunningCli, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  let ended = false;
  void running.exited.then(() => (ended = true));
  for (;;) {
    const match = shown(running).match(pattern);
    if (match) return match;
    if (ended) throw new Error(`the command ended without printing ${pattern}; it printed:\n${shown(running)}`);
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; it printed:\n${shown(running)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- the cases ----------------------------------------------------------------

const QUICK = {
  startClone: readme('npm ci && npm start      # runs a dispatch server and two workers on this machine, then two demo tasks'),
  test: readme('npm test                 # runs the test suite'),
};
const INSTALL = {
  pack: readme(`npm pack                               # writes oz-worker-${VERSION}.tgz, the package as it would be published`),
  global: readme(`npm install -g ./oz-worker-${VERSION}.tgz   # puts oz-worker on PATH (Node 22.12 or newer)`),
};
const LAPTOP = {
  doctor: readme('oz-worker doctor --worker-id my-laptop --backend direct   # one line per check, a fix for each ✘'),
  run: readme('WARP_API_KEY=... oz-worker --worker-id my-laptop --backend direct'),
};
const SERVICE = {
  dryRun: readme('oz-worker service install --dry-run --config-file /etc/oz-worker/config.yaml   # the unit and the commands'),
};
const TROUBLE = {
  doctor: readme('oz-worker doctor --config-file config.yaml                 # checks config, key and server, backend, metrics; changes nothing'),
  plan: readme('oz-worker plan --backend direct examples/assignment.json   # what a task would launch, without running it'),
};
const LOCAL = {
  demo: readme('oz-worker local --demo          # server + two workers (direct backend) + a user and a team demo task; Ctrl-C stops all'),
  docker: readme('oz-worker local --backend docker --listen 127.0.0.1:7400'),
  server: readme('oz-worker server                # the server alone; workers connect with the URLs it prints'),
};
const TASKS = {
  userTask: readme('oz-worker task submit "fix the flaky test" --watch      # owned by you, user demo: runs on local-user-worker, no team sharing'),
  teamTask: readme('oz-worker task submit "triage issues" --team 1 --watch  # owned by team demo-team: runs on local-team-worker, --share team:edit'),
  list: readme('oz-worker task list'),
  show: readme('oz-worker task show <id>'),
  cancel: readme('oz-worker task cancel <id>'),
  watch: readme('oz-worker task watch <id>      # progress and agent output; exit code 0 when the task completed'),
  logs: readme("oz-worker task logs <id>       # the agent's output only (--follow until the task ends)"),
  exported: readme('oz-worker task logs <id> --exported   # the task logs the worker exported: agent, hooks, containers, pods'),
};
const ADMIN = {
  user: readme('oz-worker admin user create alice                          # POST /api/v1/users {"name":"alice"}'),
  team: readme('oz-worker admin team create ops                            # POST /api/v1/teams {"name":"ops"}'),
  member: readme('oz-worker admin member add 1 1                             # POST /api/v1/teams/1/members {"user_id":1}: team 1, user 1'),
  agent: readme(`oz-worker admin default-agent set 1 '{"model_id":"auto"}'  # PUT /api/v1/teams/1/default-agent {"agent_config":{"model_id":"auto"}}`),
  teamKey: readme('oz-worker admin key create --team 1                        # POST /api/v1/keys {"team_id":1}: a fleet worker\'s key, shown once'),
  userKey: readme('oz-worker admin key create --user 1                        # POST /api/v1/keys {"user_id":1}: alice\'s key for `oz-worker task`'),
  device: readme('oz-worker admin device create 1 laptop --id alice-mac      # POST /api/v1/devices {"user_id":1,"name":"laptop","id":"alice-mac"}'),
  pin: readme('oz-worker admin pin create alice-mac 1                     # POST /api/v1/devices/alice-mac/pins {"team_id":1}'),
  keyList: readme('oz-worker admin key list                                   # GET /api/v1/keys; every noun has list (worker list too)'),
  archive: readme('oz-worker admin pin archive 1                              # POST /api/v1/pins/1/archive'),
  revoke: readme('oz-worker admin key revoke 3                               # DELETE /api/v1/keys/3; user, team, device, member, default-agent have remove'),
};

describe('the pages a newcomer follows', () => {
  it('have a case for every line of their plain sh blocks, and no case for a line they lost', () => {
    expect(RUN_HERE.length).toBeGreaterThan(20);
    expect(
      RUN_HERE.filter((line) => !CLAIMED.has(line)),
      'page lines no case runs',
    ).toEqual([]);
    expect(
      [...CLAIMED].filter((line) => !RUN_HERE.includes(line)),
      'cases whose page line is gone',
    ).toEqual([]);
  });

  it('mark every block that is not run here with a known reason that fits it', () => {
    for (const block of RUN_BLOCKS) {
      const where = `${block.page}: ${block.lines[0]}`;
      expect(Object.keys(BLOCK_MARKS), where).toContain(block.mark);
      if (block.mark === 'cluster') for (const line of block.lines) expect(line, where).toMatch(/^(kubectl|helm) /);
      if (block.mark === 'registry') expect(block.lines.join('\n'), where).toMatch(/registry\.example\.com|kubectl apply -k/);
      if (block.mark === 'root') expect(block.lines.join('\n'), where).toMatch(/\bsudo\b/);
      // A line that runs here needs no registry, cluster or root.
      if (block.mark === '') for (const line of block.lines) expect(line, where).not.toMatch(/^(sudo|kubectl|helm|docker push) /);
    }
    expect(commandBlocks('x.md', '```sh nonsense\necho\n```\n')[0]!.mark).toBe('nonsense');
  });

  it('show config files that load', () => {
    for (const page of [...RUN_PAGES, 'docs/configuration.md']) {
      const text = readFileSync(join(REPO_ROOT, page), 'utf8');
      for (const [, yaml] of text.matchAll(/^```yaml\n([\s\S]*?)^```/gm)) {
        const parsed = parseYaml(yaml!) as Record<string, unknown>;
        if (!('worker_id' in parsed) && !('backend' in parsed)) continue;
        expect(() => parseConfigText(yaml!, page), `${page}:\n${yaml}`).not.toThrow();
      }
    }
  });

  it('parse command lines like sh', () => {
    expect(parseLine(`A=1 B=x=y npx oz-worker --x 'a b' "c d"  # comment`)).toEqual({
      env: { A: '1', B: 'x=y' },
      words: ['npx', 'oz-worker', '--x', 'a b', 'c d'],
    });
    expect(parseLine(`oz-worker admin default-agent set 1 '{"model_id":"auto"}'  # x`).words.at(-1)).toBe('{"model_id":"auto"}');
  });
});

/** What `local` prints as it starts its two direct workers and, with --demo, runs a user and a team task on them. */
async function expectTwoWorkersAndDemoTasks(local: RunningCli): Promise<void> {
  await waitFor(local, /Local dispatch server: http:\/\/127\.0\.0\.1:\d+/);
  await waitFor(local, /Starting worker "local-team-worker" for the tasks of team demo-team \(id 1\) \(backend: direct\)/);
  await waitFor(local, /Starting worker "local-user-worker" for the tasks of user demo \(id 1\) \(backend: direct\)/);
  await waitFor(local, /Workers connected\./);
  await waitFor(local, /Demo task completed\.[\s\S]*Demo task completed\./);
  await waitFor(local, /Press Ctrl-C to stop the workers and the server\./);
  // Each demo task ran on its own worker; the stand-in printed the argv that worker built (the team's alone shares).
  const user = /Demo task owned by user demo \(no team sharing\) \(task (\S+)\):\n([\s\S]*?)Demo task completed\./.exec(shown(local));
  const team = /Demo task owned by team demo-team \(the agent gets --share team:edit\) \(task (\S+)\):\n([\s\S]*?)Demo task completed\./.exec(shown(local));
  expect(user, shown(local)).not.toBeNull();
  expect(team, shown(local)).not.toBeNull();
  expect(user![2]).toMatch(/sent to worker local-user-worker\n/);
  expect(user![2]).toMatch(new RegExp(`stdout +echo-agent: command line: oz agent run --task-id ${user![1]} `));
  expect(team![2]).toMatch(/sent to worker local-team-worker\n/);
  expect(team![2]).toMatch(new RegExp(`stdout +echo-agent: command line: oz agent run --share team:edit --task-id ${team![1]} `));
}

/** `local --demo`: server, two workers (direct), a user and a team demo task, Ctrl-C stops all. */
async function localDemo(install: Install): Promise<void> {
  const home = freshHome();
  const local = start(LOCAL.demo, install, home);
  await expectTwoWorkersAndDemoTasks(local);
  // What `local` seeds on first run, kept in the platform's state directory.
  const stateDir = join(home, '.local/state/oz-worker');
  for (const file of ['server.db', 'admin.key', 'local.json']) expect(existsSync(join(stateDir, file)), file).toBe(true);
  expect(statSync(join(stateDir, 'admin.key')).mode & 0o777).toBe(0o600);
  local.interrupt();
  expect(await local.exit(), shown(local)).toBe(0);
  await noneLeft(home);
}

/** The task block, line by line, against a running `oz-worker local` (each line its own case, so one failing hides no other). */
function describeTaskBlock(installOf: () => Install): void {
  // Its lines use what the ones before them made: they run in order (the suite itself runs beside the other cases).
  describe.concurrent('the task block, against `oz-worker local`', () => {
    let install: Install;
    let home: string;
    let local: RunningCli;
    const ids: { user?: string; team?: string; queued?: string } = {};
    beforeAll(async () => {
      install = installOf();
      home = freshHome();
      local = start('oz-worker local', install, home);
      await waitFor(local, /Workers connected\./);
      await waitFor(local, /Press Ctrl-C/);
    }, 90_000);

    it.sequential(TASKS.userTask, { timeout: 60_000 }, async () => {
      const user = await run(TASKS.userTask, install, home, {}, 30_000).catch((error: Error) => {
        throw new Error(`${error.message}\nlocal printed:\n${shown(local)}`);
      });
      expect(user.stdout, user.stderr).toMatch(/^submitted task (\S+) \(USER 1\)\n/);
      ids.user = /^submitted task (\S+)/.exec(user.stdout)![1]!;
      expect(user.code, `${user.stdout}${user.stderr}`).toBe(0);
      expect(user.stdout).toMatch(/\ntask completed/);
      // Owned by the caller (user demo): it runs on the user's worker, and the agent gets no team sharing.
      expect(user.stdout).toMatch(/ assigned +sent to worker local-user-worker\n/);
      const argv = new RegExp(`stdout +echo-agent: command line: oz agent run (.*)--task-id ${ids.user}(.*)\n`).exec(user.stdout);
      expect(argv, user.stdout).not.toBeNull();
      expect(argv![1]! + argv![2]!).not.toContain('--share');
    });

    it.sequential(TASKS.teamTask, { timeout: 60_000 }, async () => {
      const team = await run(TASKS.teamTask, install, home, {}, 30_000);
      expect(team.code, `${team.stdout}${team.stderr}`).toBe(0);
      expect(team.stdout).toMatch(/^submitted task (\S+) \(TEAM 1\)\n/);
      expect(team.stdout).toMatch(/\ntask completed/);
      ids.team = /^submitted task (\S+)/.exec(team.stdout)![1]!;
      // Owned by team demo-team (id 1): it runs on the team's worker, and the agent shares with the team.
      expect(team.stdout).toMatch(/ assigned +sent to worker local-team-worker\n/);
      expect(team.stdout).toMatch(new RegExp(`stdout +echo-agent: command line: oz agent run --share team:edit --task-id ${ids.team} `));
    });

    it.sequential(TASKS.list, async () => {
      const list = await run(TASKS.list, install, home);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toMatch(/^ID +STATE +OWNER +AGE +TITLE\n/);
      expect(list.stdout).toMatch(new RegExp(`\\n${ids.team} +completed +TEAM 1 +\\d+s +triage issues\\n`));
      expect(list.stdout).toMatch(/\n\S+ +\S+ +USER 1 +\d+s +fix the flaky test\n/);
    });

    it.sequential(TASKS.show, async () => {
      const show = await run(TASKS.show, install, home, { '<id>': ids.team! });
      expect(show.code, show.stderr).toBe(0);
      expect(show.stdout).toMatch(new RegExp(`^id +${ids.team}\\n`));
      expect(show.stdout).toMatch(/\nstate +completed\n/);
      expect(show.stdout).toMatch(/\nworker +local-team-worker\n/);
    });

    it.sequential(TASKS.cancel, async () => {
      // A task nobody can take yet (routed to demo's device, which has no worker) stays queued: cancel it.
      expect((await run('oz-worker admin device create 1 phone --id away', install, home)).code).toBe(0);
      const queued = await run('oz-worker task submit "wait for the phone" --device away', install, home);
      expect(queued.code, queued.stderr).toBe(0);
      ids.queued = /^submitted task (\S+)/.exec(queued.stdout)![1]!;
      const cancel = await run(TASKS.cancel, install, home, { '<id>': ids.queued });
      expect(cancel.code, cancel.stderr).toBe(0);
      expect(cancel.stdout).toBe(`task ${ids.queued} cancelled\n`);
    });

    it.sequential(TASKS.watch, async () => {
      const done = await run(TASKS.watch, install, home, { '<id>': ids.team! });
      expect(done.code, done.stdout + done.stderr).toBe(0);
      expect(done.stdout).toMatch(/\ntask completed/);
      // Progress (the task's events) and the agent's output, in one stream.
      expect(done.stdout).toMatch(/ claimed +worker local-team-worker claimed the task/);
      expect(done.stdout).toMatch(new RegExp(`stdout +echo-agent: task ${ids.team} done\n`));
      const cancelled = await run(TASKS.watch, install, home, { '<id>': ids.queued! });
      expect(cancelled.code).toBe(1);
      expect(cancelled.stdout).toMatch(/\ntask cancelled/);
    });

    it.sequential(TASKS.logs, { timeout: 90_000 }, async () => {
      const logs = await run(TASKS.logs, install, home, { '<id>': ids.team! });
      expect(logs.code, logs.stderr).toBe(0);
      // The agent's lines alone: no timestamps, event names or progress.
      const lines = logs.stdout.split('\n').filter(Boolean);
      expect(lines.length, logs.stdout).toBeGreaterThanOrEqual(3);
      for (const line of lines) expect(line).toMatch(/^echo-agent/);
      expect(lines).toContain(`echo-agent: task ${ids.team} done`);
      expect(logs.stdout).toMatch(new RegExp(`^echo-agent: command line: oz agent run --share team:edit --task-id ${ids.team} `, 'm'));
      // --follow returns once the task has ended, with the watch exit codes.
      const followed = await run(`${TASKS.logs.split(' #')[0]} --follow`, install, home, { '<id>': ids.team! }, 20_000);
      expect(followed.code, followed.stderr).toBe(0);
      expect(followed.stdout).toBe(logs.stdout);
      const cancelled = await run(`${TASKS.logs.split(' #')[0]} --follow`, install, home, { '<id>': ids.queued! }, 20_000);
      expect(cancelled.code).toBe(1);
    });

    it.sequential(TASKS.exported, { timeout: 60_000 }, async () => {
      const exported = await run(TASKS.exported, install, home, { '<id>': ids.team! });
      expect(exported.code, exported.stderr).toBe(0);
      // The worker exported the agent's output to the local server before the task completed, each line with its source.
      const lines = exported.stdout.split('\n').filter(Boolean);
      expect(lines.length, exported.stdout).toBeGreaterThanOrEqual(3);
      for (const line of lines) expect(line).toMatch(/^\[agent\.(stdout|stderr)\] echo-agent/);
      expect(lines).toContain(`[agent.stdout] echo-agent: task ${ids.team} done`);
    });

    it.sequential('Ctrl-C stops `oz-worker local` and everything it started', { timeout: 60_000 }, async () => {
      local.interrupt();
      expect(await local.exit(), shown(local)).toBe(0);
      await noneLeft(home);
    });
  });
}

/** `oz-worker server` alone, set up with the admin block, and a worker connected with the URLs it printed. */
async function serverAndAdmin(install: Install): Promise<void> {
  const home = freshHome();
  const server = start(LOCAL.server, install, home);
  const [, url, webSocketUrl, rootUrl] = await waitFor(
    server,
    /listening on (http:\/\/127\.0\.0\.1:\d+)\n\s+workers connect with:\s+--web-socket-url (\S+) --server-root-url (\S+)\n/,
  );
  const admin = async (line: string): Promise<string> => {
    const result = await run(line, install, home);
    expect(result.code, `${line}\n${result.stderr}`).toBe(0);
    return result.stdout;
  };
  expect(await admin(ADMIN.user)).toBe('created user 1 "alice"\n');
  expect(await admin(ADMIN.team)).toBe('created team 1 "ops"\n');
  expect(await admin(ADMIN.member)).toBe('user 1 is a member of team 1 "ops" (members: 1)\n');
  expect(await admin(ADMIN.agent)).toBe('team 1 "ops" default agent: {"model_id":"auto"}\n');
  const teamKey = /^created key 2 for team 1: (\S+)\n\(shown once/.exec(await admin(ADMIN.teamKey))?.[1];
  expect(teamKey).toBeDefined();
  const userKey = /^created key 3 for user 1: (\S+)\n/.exec(await admin(ADMIN.userKey))?.[1];
  expect(userKey).toBeDefined();

  // A fleet worker of team 1, with the URLs the server printed and the team key.
  const work = tempDir('readme-worker');
  cleanups.push(work.cleanup);
  writeFileSync(
    join(work.path, 'worker.yaml'),
    `backend:\n  direct:\n    oz_path: ${join(REPO_ROOT, 'examples/echo-agent/oz')}\n    workspace_root: ${work.path}/ws\n`,
  );
  const worker = new RunningCli(
    [
      ...install.bin,
      '--worker-id',
      'fleet-1',
      '--config-file',
      join(work.path, 'worker.yaml'),
      '--web-socket-url',
      webSocketUrl!,
      '--server-root-url',
      rootUrl!,
    ],
    {
      env: { PATH: install.path, HOME: home, WARP_API_KEY: teamKey!, OZ_WORKER_STATE_DIR: join(work.path, 'state') },
      cwd: install.dir,
    },
  );
  cleanups.push(() => worker.kill());
  await worker.waitFor(/Connected to dispatch server/, 30_000);
  const task = await runCli(['task', 'submit', 'hello from alice', '--team', '1', '--watch', '--server', url!, '--api-key', userKey!], {
    command: install.bin,
    env: { PATH: install.path, HOME: home },
  });
  expect(task.code, task.stdout + task.stderr).toBe(0);
  expect(task.stdout).toMatch(/\ntask completed/);

  expect(await admin(ADMIN.device)).toBe('registered device alice-mac "laptop" for user 1\n');
  expect(await admin(ADMIN.pin)).toBe("pin 1: team 1's tasks with --device alice-mac go to that device\n");
  const keys = await admin(ADMIN.keyList);
  expect(keys).toMatch(
    /^ID +PREFIX +KIND +OWNER +STATE +NAME\n1 +\S+ +admin +- +active +admin\n2 +\S+ +team +team 1 +active +\n3 +\S+ +user +user 1 +active +\n$/,
  );
  expect(keys).not.toContain(teamKey!);
  expect(await admin('oz-worker admin worker list')).toMatch(/\nfleet-1 +\S+ +team 1 +0 +no\n/);
  expect(await admin(ADMIN.archive)).toBe('archived pin 1\n');
  expect(await admin('oz-worker admin pin list')).toMatch(/\n1 +alice-mac +1 +archived\n$/);
  expect(await admin(ADMIN.revoke)).toBe('revoked key 3\n');
  const revoked = await runCli(['task', 'list', '--server', url!, '--api-key', userKey!], { command: install.bin, env: { PATH: install.path, HOME: home } });
  expect(revoked.code).toBe(1);
  expect(revoked.stderr).toMatch(/does not accept the API key/);

  worker.interrupt();
  expect(await worker.exit()).toBe(0);
  server.interrupt();
  expect(await server.exit(), shown(server)).toBe(0);
  await noneLeft(home);
}

/** The Warp line: the worker starts (a non-root user too) and dials oz.warp.dev; here a loopback proxy refuses the tunnel. */
async function connectToWarp(install: Install): Promise<void> {
  const home = freshHome();
  const proxy = await refusingProxy();
  const { env, words } = parseLine(LAPTOP.run);
  expect(words[0]).toBe('oz-worker');
  env.WARP_API_KEY = 'wk_readme_placeholder_key';
  // A newcomer is rarely root: run it as one when the tests are root.
  const asUser = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv') ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] : [];
  // That user owns the HOME and the folder, as they would their own clone or project (npm treats a folder it does not own differently).
  if (asUser.length > 0) for (const dir of [home, install.dir]) expect((await runCli(['-R', `${NOBODY}:${NOBODY}`, dir], { command: ['chown'] })).code).toBe(0);
  // Someone connecting to Warp has the oz CLI (the stand-in plays it) and a Node they can run.
  const tools = asUser.length > 0 ? `${toolsForNobody()}:${join(toolsForNobody(), 'oz-cli')}` : standInOz(home);
  const worker = new RunningCli([...asUser, ...install.typed, ...words.slice(1)], {
    env: { PATH: `${tools}:${install.path}`, HOME: home, ...env, HTTPS_PROXY: proxy.url, npm_config_offline: 'true', npm_config_update_notifier: 'false' },
    cwd: install.dir,
    tty: false,
  });
  cleanups.push(() => worker.kill());
  let ended = false;
  void worker.exited.then(() => (ended = true));
  const deadline = Date.now() + 30_000;
  while (!proxy.tunnels.includes('oz.warp.dev:443') && !ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(ended, `the worker exited:\n${worker.output}`).toBe(false);
  expect(proxy.tunnels, worker.output).toContain('oz.warp.dev:443');
  expect(worker.output).not.toMatch(/permission denied/i);
  // Ctrl-C: the worker shuts down cleanly (npm, around it, reports the signal its own way).
  worker.interrupt();
  await worker.exit();
  expect(worker.output).toMatch(/Worker shutdown complete/);
  await noneLeft(home);
}

/** `doctor` before connecting to Warp: every check, one line each, with the server unreachable through the proxy. */
async function doctorForTheLaptop(install: Install): Promise<void> {
  const home = freshHome();
  const proxy = await refusingProxy();
  const result = await run(LAPTOP.doctor, install, home, {}, 60_000, {
    PATH: `${standInOz(home)}:${install.path}`,
    WARP_API_KEY: 'wk_readme_placeholder_key',
    HTTPS_PROXY: proxy.url,
  });
  expect(result.code, result.stdout + result.stderr).toBe(1);
  const lines = result.stdout.split('\n');
  expect(lines).toContain('✔ config: valid (worker my-laptop, backend direct; unlimited concurrent tasks; task logs collected)');
  expect(result.stdout).toMatch(/^✘ dispatch server: cannot reach wss:\/\/oz\.warp\.dev\/api\/v1\/selfhosted\/worker\/ws.*\n {4}fix: /m);
  expect(result.stdout).toMatch(/^✔ oz CLI: .*oz-cli\/oz runs/m);
  expect(result.stdout).toMatch(/^✔ workspace: /m);
  expect(result.stdout).toMatch(/^✔ metrics: off/m);
  expect(proxy.tunnels).toContain('oz.warp.dev:443');
}

// The cases are independent (each its own HOME, state directory and free ports), so they run side by side; the
// lines that build on each other (a clone's `npm ci` before its `npx`, the task block) run in order within their suite.
describe.concurrent('from a clone', () => {
  let clone: Install;
  beforeAll(() => {
    // A fresh clone of this tree: what git tracks plus new files not ignored (so uncommitted work is tried too).
    const dir = tempDir('readme-clone');
    cleanups.push(dir.cleanup);
    chmodSync(dir.path, 0o755);
    const files = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: REPO_ROOT, encoding: 'utf8' }).stdout.split('\0').filter(Boolean);
    for (const file of files) {
      if (!existsSync(join(REPO_ROOT, file))) continue;
      mkdirSync(dirname(join(dir.path, file)), { recursive: true });
      cpSync(join(REPO_ROOT, file), join(dir.path, file), { preserveTimestamps: true });
    }
    clone = {
      name: 'a fresh clone',
      bin: [process.execPath, join(dir.path, 'bin/oz-worker.js')],
      typed: ['npx', 'oz-worker'],
      dir: dir.path,
      path: SYSTEM_PATH,
    };
  }, 120_000);

  describe.concurrent('installed with `npm ci`', () => {
    it.sequential('`npm ci && npm start` installs, then runs a server, two workers and the demo tasks; Ctrl-C stops them', { timeout: 600_000 }, async () => {
      const [install, startCommand] = QUICK.startClone.split(' # ')[0]!.split(' && ');
      expect([install, startCommand]).toEqual(['npm ci', 'npm start']);
      // Asynchronously: a synchronous spawn would stall the cases running beside this one (their pipes fill up).
      const ci = await runCli(['ci', '--no-audit', '--no-fund'], {
        command: ['npm'],
        cwd: clone.dir,
        env: { PATH: SYSTEM_PATH, HOME: process.env.HOME ?? '/root', npm_config_offline: 'true', npm_config_update_notifier: 'false' },
        timeoutMs: 540_000,
      });
      expect(ci.code, `${ci.stdout}\n${ci.stderr}`).toBe(0);
      expect(existsSync(join(clone.dir, 'dist/main.js')), 'npm ci builds dist/').toBe(true);

      const home = freshHome();
      // The one change: a free port instead of 7317, passed the npm way.
      const npmStart = new RunningCli(['npm', 'start', '--', '--listen', '127.0.0.1:0'], {
        env: { PATH: SYSTEM_PATH, HOME: home, npm_config_update_notifier: 'false' },
        cwd: clone.dir,
        tty: true,
      });
      cleanups.push(() => npmStart.kill());
      await expectTwoWorkersAndDemoTasks(npmStart);
      expect(shown(npmStart)).toMatch(/STAND-IN agent .*examples\/echo-agent\/oz/);
      await waitFor(npmStart, /Press Ctrl-C/);
      npmStart.interrupt();
      await npmStart.exit();
      await noneLeft(home);
    });

    it.sequential('`WARP_API_KEY=... oz-worker …` (npx oz-worker in the clone) starts a worker that dials Warp', { timeout: 90_000 }, async () => {
      await connectToWarp(clone);
    });
  });

  it('`npm test` is this suite', () => {
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(parseLine(QUICK.test).words).toEqual(['npm', 'test']);
    expect(manifest.scripts.test).toBe('vitest run');
    expect(manifest.scripts.pretest, 'npm test builds first').toMatch(/build/);
    const config = readFileSync(join(REPO_ROOT, 'vitest.config.ts'), 'utf8');
    expect(config).toContain("include: ['test/**/*.test.ts']");
  });

  it('`oz-worker local --demo` runs a server, two workers and a user and a team demo task; Ctrl-C stops all', { timeout: 120_000 }, () => localDemo(CLONE));

  it('`oz-worker local --backend docker` runs the Docker backend, or says what Docker lacks', { timeout: 120_000 }, async () => {
    const home = freshHome();
    const dockerEnv = join(process.env.OZ_TEST_CACHE ?? '/root/.cache/oz-worker-test', 'docker/env');
    const dockerHost = existsSync(dockerEnv) ? /^DOCKER_HOST=(\S+)$/m.exec(readFileSync(dockerEnv, 'utf8'))?.[1] : undefined;
    const reachable = dockerHost !== undefined && existsSync(dockerHost.replace(/^unix:\/\//, ''));
    // Without an engine, point DOCKER_HOST at a socket that does not exist: the backend's own error is the promise.
    const local = start(LOCAL.docker, CLONE, home, { env: { DOCKER_HOST: reachable ? dockerHost! : `unix://${home}/no-docker.sock` } });
    await waitFor(local, /Local dispatch server: http:\/\/127\.0\.0\.1:\d+/);
    if (reachable) {
      await waitFor(local, /Workers connected\./, 90_000);
      local.interrupt();
      expect(await local.exit(), shown(local)).toBe(0);
    } else {
      const code = await local.exit(90_000);
      expect(code, shown(local)).not.toBe(0);
      expect(shown(local)).toMatch(/Docker socket \S+no-docker\.sock does not exist/);
    }
    expect(shown(local)).not.toMatch(/is empty/);
    await noneLeft(home);
  });

  it('`oz-worker server` and the admin block: a server set up without curl runs a team task', { timeout: 180_000 }, () => serverAndAdmin(CLONE));

  describeTaskBlock(() => CLONE);

  it('`oz-worker doctor --worker-id my-laptop …` shows one line per check, with a fix for what fails', { timeout: 90_000 }, () => doctorForTheLaptop(CLONE));

  it('`oz-worker service install --dry-run …` prints the unit and the commands, and changes nothing', async () => {
    const unit = '/etc/systemd/system/oz-worker.service';
    const before = existsSync(unit) ? readFileSync(unit, 'utf8') : undefined;
    const result = await run(SERVICE.dryRun, CLONE, freshHome());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/ExecStart=.*--config-file \/etc\/oz-worker\/config\.yaml/);
    expect(result.stdout).toMatch(/systemctl .*enable/);
    expect(existsSync(unit) ? readFileSync(unit, 'utf8') : undefined).toBe(before);
  });

  it("`oz-worker doctor --config-file config.yaml` checks the README's minimal config", { timeout: 90_000 }, async () => {
    const home = freshHome();
    const readmeText = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    const minimal = /## A minimal config\n[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readmeText)?.[1];
    expect(minimal, 'the README shows a minimal config').toBeDefined();
    writeFileSync(join(home, 'config.yaml'), minimal!);
    const proxy = await refusingProxy();
    const here: Install = { ...CLONE, dir: home };
    const result = await run(TROUBLE.doctor, here, home, {}, 60_000, {
      PATH: `${standInOz(home)}:${CLONE.path}`,
      WARP_API_KEY: 'wk_readme_placeholder_key',
      HTTPS_PROXY: proxy.url,
    });
    expect(result.stdout.split('\n')).toContain('✔ config: valid (worker my-worker, backend direct; at most 4 concurrent tasks; task logs collected)');
    for (const check of ['dispatch server', 'oz CLI', 'workspace', 'metrics']) expect(result.stdout).toMatch(new RegExp(`^[✔✘-] ${check}: `, 'm'));
    // It changes nothing: no workspace root, no state directory.
    expect(readdirSync(home).sort()).toEqual(['config.yaml', 'oz-cli']);
  });

  it('`oz-worker plan --backend direct examples/assignment.json` shows what the sample team task would launch', async () => {
    const result = await run(TROUBLE.plan, CLONE, freshHome());
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^Task \S+ \(execution \S+\), owner TEAM \d+ — team-owned: the agent gets --share team:edit\n/);
    expect(result.stdout).toMatch(/\nargs:\n {2}- agent\n {2}- run\n {2}- --share\n {2}- team:edit\n/);
  });
});

describe.concurrent('from the packed tarball, installed with npm install -g', () => {
  let installed: Install;
  let packed: { file: string; install: CliResult };
  beforeAll(async () => {
    const dir = tempDir('readme-pack');
    cleanups.push(dir.cleanup);
    chmodSync(dir.path, 0o755);
    // Someone installing the package has a Node it supports (>= 22.12) first on PATH.
    const npmEnv = { PATH: `${NODE_DIR}:${SYSTEM_PATH}`, HOME: process.env.HOME ?? '/root', npm_config_offline: 'true', npm_config_update_notifier: 'false' };
    // The README's `npm pack`, in the clone; without scripts, since dist/ is built (npm test builds first) and
    // other test files run from it. Asynchronously, like every long command here: the clone's cases run meanwhile.
    expect(parseLine(INSTALL.pack).words).toEqual(['npm', 'pack']);
    const pack = await runCli(['pack', '--ignore-scripts', '--pack-destination', dir.path], {
      command: ['npm'],
      cwd: REPO_ROOT,
      env: npmEnv,
      timeoutMs: 120_000,
    });
    expect(pack.code, pack.stderr).toBe(0);
    const file = pack.stdout.trim().split('\n').at(-1)!;
    // The README's `npm install -g ./oz-worker-<version>.tgz`, into a prefix of this test's instead of the machine's.
    const words = parseLine(INSTALL.global).words;
    expect(words.slice(0, 3)).toEqual(['npm', 'install', '-g']);
    const prefix = join(dir.path, 'global');
    const install = await runCli(['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', words[3]!], {
      command: ['npm'],
      cwd: dir.path,
      env: npmEnv,
      timeoutMs: 540_000,
    });
    packed = { file, install };
    expect(install.code, `${install.stdout}\n${install.stderr}`).toBe(0);
    const folder = join(dir.path, 'somewhere');
    mkdirSync(folder);
    const bin = join(prefix, 'bin');
    // The package needs Node >= 22.12 on PATH (the clone brings its own).
    installed = { name: 'the installed package', bin: [join(bin, 'oz-worker')], typed: ['oz-worker'], dir: folder, path: `${bin}:${NODE_DIR}:${SYSTEM_PATH}` };
  }, 600_000);

  it(`\`npm pack\` writes oz-worker-${VERSION}.tgz, and \`npm install -g\` of it puts oz-worker on PATH`, async () => {
    expect(packed.file).toBe(`oz-worker-${VERSION}.tgz`);
    expect(packed.install.stderr).not.toMatch(/EBADENGINE/);
    const version = await runCli(['--version'], { command: ['oz-worker'], env: { PATH: installed.path, HOME: freshHome() }, cwd: installed.dir });
    expect(version.stdout.trim()).toBe(VERSION);
  });

  it('`WARP_API_KEY=... oz-worker …` starts a worker that dials Warp', { timeout: 90_000 }, () => connectToWarp(installed));
  it('`oz-worker local --demo` runs a server, two workers and a user and a team demo task; Ctrl-C stops all', { timeout: 120_000 }, () => localDemo(installed));
  it('`oz-worker server` and the admin block', { timeout: 180_000 }, () => serverAndAdmin(installed));
  describeTaskBlock(() => installed);
});
