// Which config file and backend the workers `oz-worker local` starts get. The
// user's `--config-file` is validated here first (its errors name its own
// lines), then passed through; what `local` adds on top — the direct backend's
// workspace root (in the user's cache, outside the state directory, so an agent
// finds no keys next to its workspace), when the file sets none — goes into
// a copy under the state directory. Without a file, a non-direct backend gets
// no file at all: the backend's own checks report what is missing.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { BackendName } from '../task/contract.js';
import { BACKEND_BLOCKS, type FileConfig } from '../config/file-schema.js';
import { loadConfigFile } from '../config/load-file.js';
import { localWorkspaceRoot } from '../config/locations.js';

export const LOCAL_WORKER_CONFIG = 'local-worker.yaml';

export interface WorkerConfigPlan {
  backend: BackendName;
  /** Arguments for the worker: `--config-file` and `--backend`, as needed. */
  args: string[];
  /** Whether the file sets `backend.direct.oz_path` (then no stand-in agent is needed). */
  fileSetsOzPath: boolean;
}

/** The backend the file configures, if any. */
const fileBackend = (file: FileConfig | undefined): BackendName | undefined => BACKEND_BLOCKS.find((name) => file?.backend?.[name] !== undefined);

export async function planWorkerConfig(options: {
  backend: BackendName | undefined;
  configFile: string | undefined;
  stateDir: string;
}): Promise<WorkerConfigPlan> {
  const { stateDir } = options;
  const file = options.configFile ? await loadConfigFile(options.configFile) : undefined;
  const fromFile = fileBackend(file);
  // `local` runs the direct backend unless told otherwise (the worker alone defaults to docker).
  const backend = options.backend ?? fromFile ?? 'direct';
  const args: string[] = [];
  const localCopy = join(stateDir, LOCAL_WORKER_CONFIG);
  const workspaceRoot = localWorkspaceRoot(stateDir);
  if (options.configFile) {
    if (backend === 'direct' && (fromFile ?? 'direct') === 'direct' && !file?.backend?.direct?.workspace_root) {
      const document = parseDocument(readFileSync(options.configFile, 'utf8'));
      document.setIn(['backend', 'direct', 'workspace_root'], workspaceRoot);
      writeFileSync(
        localCopy,
        `# Written by oz-worker local: ${options.configFile} plus a workspace root outside the state directory.\n${document.toString()}`,
        {
          mode: 0o600,
        },
      );
      args.push('--config-file', localCopy);
    } else {
      args.push('--config-file', options.configFile);
    }
  } else if (backend === 'direct') {
    writeFileSync(
      localCopy,
      `# Written by oz-worker local; pass --config-file to use your own.\nbackend:\n  direct:\n    workspace_root: ${JSON.stringify(workspaceRoot)}\n`,
      { mode: 0o600 },
    );
    args.push('--config-file', localCopy);
  }
  if (backend !== fromFile) args.push('--backend', backend);
  return { backend, args, fileSetsOzPath: Boolean(file?.backend?.direct?.oz_path) };
}
