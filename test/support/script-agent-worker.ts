// A real worker on the direct backend whose agent is a tiny shell script: cheap
// enough to run thousands of tasks (fault and soak suites). The script sleeps
// AGENT_SLEEP seconds when set, then exits with AGENT_EXIT (default 0).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { API_KEY } from './direct-worker.js';
import { FakeDispatchServer } from './fake-dispatch-server.js';
import { startWorker, tempDir, type WorkerProcess } from './worker-process.js';

const AGENT_SCRIPT = '#!/bin/sh\n[ -n "$AGENT_SLEEP" ] && sleep "$AGENT_SLEEP"\nexit "${AGENT_EXIT:-0}"\n';

export interface ScriptAgentHarness {
  server: FakeDispatchServer;
  worker: WorkerProcess;
  workspaceRoot: string;
  close(): Promise<void>;
}

export async function startScriptAgentWorker(options: { env?: Record<string, string>; args?: string[] } = {}): Promise<ScriptAgentHarness> {
  const server = await FakeDispatchServer.start({ apiKey: API_KEY });
  const dir = tempDir('script-agent');
  const agent = join(dir.path, 'agent.sh');
  writeFileSync(agent, AGENT_SCRIPT, { mode: 0o755 });
  const workspaceRoot = join(dir.path, 'ws');
  const config = join(dir.path, 'config.yaml');
  writeFileSync(config, `worker_id: script-agent\nbackend:\n  direct:\n    oz_path: ${agent}\n    workspace_root: ${workspaceRoot}\n`);
  const worker = startWorker({
    args: ['--config-file', config, '--web-socket-url', server.url, ...(options.args ?? [])],
    env: { WARP_API_KEY: API_KEY, ...options.env },
  });
  await server.waitForConnection().catch((error: Error) => {
    throw new Error(`${error.message}; the worker's output:\n${worker.output.slice(-4000)}`);
  });
  return {
    server,
    worker,
    workspaceRoot,
    async close() {
      await worker.stop();
      await server.close();
      dir.cleanup();
    },
  };
}

/** An assignment for the script agent; `env` reaches the agent (AGENT_SLEEP, AGENT_EXIT). */
export function scriptTask(id: string, env: Record<string, string> = {}): Record<string, unknown> {
  return { task_id: id, execution_id: `exec-${id}`, task: { id, title: id }, env_vars: env };
}
