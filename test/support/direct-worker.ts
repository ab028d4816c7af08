// A real worker on the direct backend, with the recording `oz` stand-in, a temp
// workspace root and a fake dispatch server.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeDispatchServer } from './fake-dispatch-server.js';
import { FAKE_OZ, startWorker, tempDir, type WorkerProcess } from './worker-process.js';

export const API_KEY = 'wk_test_secret_key_0123456789';

export interface AgentRecord {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  pid: number;
  childPid?: number;
}

export interface DirectHarness {
  server: FakeDispatchServer;
  worker: WorkerProcess;
  root: string;
  workspaceRoot: string;
  recordDir: string;
  record(taskId: string): AgentRecord | undefined;
  waitForRecord(taskId: string): Promise<AgentRecord>;
  close(): Promise<void>;
}

export interface DirectOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Extra YAML under `backend.direct`. */
  directYaml?: string;
  /** Extra top-level YAML. */
  topYaml?: string;
  server?: FakeDispatchServer;
}

export async function startDirectWorker(options: DirectOptions = {}): Promise<DirectHarness> {
  const server = options.server ?? (await FakeDispatchServer.start({ apiKey: API_KEY }));
  const dir = tempDir('direct');
  const workspaceRoot = join(dir.path, 'workspaces');
  const recordDir = join(dir.path, 'records');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(recordDir);
  const configPath = join(dir.path, 'config.yaml');
  writeFileSync(
    configPath,
    [
      'worker_id: it-worker',
      options.topYaml ?? '',
      'backend:',
      '  direct:',
      `    oz_path: ${FAKE_OZ}`,
      `    workspace_root: ${workspaceRoot}`,
      ...(options.directYaml ? options.directYaml.split('\n').map((l) => `    ${l}`) : []),
    ].join('\n'),
  );
  const worker = startWorker({
    args: ['--config-file', configPath, '--web-socket-url', server.url, '-e', `OZ_RECORD_DIR=${recordDir}`, ...(options.args ?? [])],
    env: { WARP_API_KEY: API_KEY, ...options.env },
  });
  const record = (taskId: string): AgentRecord | undefined => {
    const file = join(recordDir, `${taskId}.json`);
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as AgentRecord) : undefined;
  };
  return {
    server,
    worker,
    root: dir.path,
    workspaceRoot,
    recordDir,
    record,
    waitForRecord: (taskId) => server.until(() => record(taskId), 15_000, `agent record for ${taskId}`),
    async close() {
      await worker.stop();
      if (!options.server) await server.close();
      dir.cleanup();
    },
  };
}
