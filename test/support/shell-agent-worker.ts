// A real worker on the direct backend whose agent is `/bin/sh` running the
// task's AGENT_CMD, so a test can make the agent do what a hostile or sloppy
// agent does (read its parent's environment, daemonize, outlive its task).
// Every process gets OUT, a directory the test reads back.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_KEY } from './direct-worker.js';
import { FakeDispatchServer } from './fake-dispatch-server.js';
import { startWorker, tempDir, type WorkerProcess } from './worker-process.js';

const AGENT_SCRIPT = '#!/bin/sh\neval "$AGENT_CMD"\n';

export interface ShellAgentHarness {
  server: FakeDispatchServer;
  worker: WorkerProcess;
  root: string;
  workspaceRoot: string;
  /** Where AGENT_CMD, setup and teardown write what the test reads. */
  out: string;
  readOut(name: string): string | undefined;
  waitForOut(name: string, timeoutMs?: number): Promise<string>;
  /** Entries left under the workspace root. */
  workspaces(): string[];
  close(): Promise<void>;
}

export interface ShellAgentOptions {
  server?: FakeDispatchServer;
  /** Extra YAML under `backend.direct` (one key per line). */
  directYaml?: string;
  args?: string[];
  env?: Record<string, string>;
  /** An existing harness directory to reuse (a restart with the same workspaces and OUT). */
  root?: string;
}

export async function startShellAgentWorker(options: ShellAgentOptions = {}): Promise<ShellAgentHarness> {
  const server = options.server ?? (await FakeDispatchServer.start({ apiKey: API_KEY }));
  const dir = options.root ? { path: options.root, cleanup: () => undefined } : tempDir('shell-agent');
  const agent = join(dir.path, 'agent.sh');
  const out = join(dir.path, 'out');
  const workspaceRoot = join(dir.path, 'ws');
  if (!options.root) {
    chmodSync(dir.path, 0o755);
    writeFileSync(agent, AGENT_SCRIPT, { mode: 0o755 });
    mkdirSync(out, { mode: 0o777 });
    chmodSync(out, 0o777);
  }
  const config = join(dir.path, 'config.yaml');
  writeFileSync(
    config,
    [
      'worker_id: shell-agent',
      'backend:',
      '  direct:',
      `    oz_path: ${agent}`,
      `    workspace_root: ${workspaceRoot}`,
      ...(options.directYaml ? options.directYaml.split('\n').map((line) => `    ${line}`) : []),
    ].join('\n'),
  );
  const worker = startWorker({
    args: ['--config-file', config, '--web-socket-url', server.url, '-e', `OUT=${out}`, ...(options.args ?? [])],
    // OUT in the worker's own environment too: teardown gets that one, not the task's.
    env: { WARP_API_KEY: API_KEY, OUT: out, ...options.env },
  });
  const readOut = (name: string): string | undefined => {
    const file = join(out, name);
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  };
  return {
    server,
    worker,
    root: dir.path,
    workspaceRoot,
    out,
    readOut,
    waitForOut: (name, timeoutMs = 15_000) => server.until(() => readOut(name)?.endsWith('\n') && readOut(name), timeoutMs, `${name} in OUT`),
    workspaces: () => (existsSync(workspaceRoot) ? readdirSync(workspaceRoot) : []),
    async close() {
      await worker.stop();
      if (!options.server) await server.close();
      dir.cleanup();
    },
  };
}

/** An assignment whose agent runs `command` in /bin/sh. */
export function shellTask(id: string, command: string, extra: { executionId?: string; env?: Record<string, string> } = {}): Record<string, unknown> {
  return {
    task_id: id,
    execution_id: extra.executionId ?? `exec-${id}`,
    task: { id, title: id, task_definition: { prompt: 'do it' } },
    env_vars: { AGENT_CMD: command, ...extra.env },
  };
}

/** Kills a pid recorded in OUT, if it is still there (test cleanup). */
export function killQuietly(pid: number | undefined): void {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
