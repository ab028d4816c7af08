// The worker's command-line flags: the Go worker's names and help texts, plus
// our additions (API key file, shutdown grace period, device scope). Values are
// handed to resolveWorkerConfig as a WorkerFlags bag; only shapes commander can
// check cheaply are checked here.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { BACKEND_NAMES } from '../task/contract.js';
import { ConfigError } from '../config/errors.js';
import { expandPath } from '../config/paths.js';
import { LOG_LEVELS } from '../config/resolve.js';
import { DEFAULT_SERVER_ROOT_URL, DEFAULT_SHUTDOWN_GRACE_MS, DEFAULT_WEB_SOCKET_URL, DEFAULT_WORKSPACE_ROOT } from '../config/worker-config.js';
import { formatGoDuration } from '../config/go-duration.js';

/** Repeatable flags collect every occurrence, in order, never split on commas. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function parseBackend(value: string): string {
  if (value === '' || (BACKEND_NAMES as readonly string[]).includes(value)) return value;
  throw new InvalidArgumentError(`Use one of ${BACKEND_NAMES.join(', ')}.`);
}

const toAbsolutePath = (value: string): string => expandPath(value);

/**
 * Boolean flags and what `--flag=VALUE` means for each. The Go worker's flag
 * parser takes that form for every boolean flag (`--no-cleanup=false`), which
 * commander does not; the words are rewritten before parsing instead of making
 * the value optional, which would swallow a following word (`plan --no-cleanup
 * assignment.json`).
 */
const BOOLEAN_FLAG_VALUES: Readonly<Record<string, { true: string[]; false: string[] }>> = {
  '--no-cleanup': { true: ['--no-cleanup'], false: [] },
  '--one-shot': { true: ['--one-shot'], false: [] },
  '--collect-task-logs': { true: ['--collect-task-logs'], false: ['--no-collect-task-logs'] },
  '--no-collect-task-logs': { true: ['--no-collect-task-logs'], false: ['--collect-task-logs'] },
};

/** `--flag=true|false|1|0` of a boolean flag, as the plain flags it means; anything else unchanged. */
export function expandBooleanFlagValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (const [index, word] of argv.entries()) {
    if (word === '--') return [...out, ...argv.slice(index)];
    const equals = word.indexOf('=');
    const meanings = equals > 0 && word.startsWith('--') ? BOOLEAN_FLAG_VALUES[word.slice(0, equals)] : undefined;
    if (!meanings) {
      out.push(word);
      continue;
    }
    const value = word
      .slice(equals + 1)
      .trim()
      .toLowerCase();
    if (value !== 'true' && value !== '1' && value !== 'false' && value !== '0') {
      throw new ConfigError(`invalid ${word}: use ${word.slice(0, equals)} alone, or =true or =false`);
    }
    out.push(...(value === 'true' || value === '1' ? meanings.true : meanings.false));
  }
  return out;
}

/** Our flags, by long name: the Go worker has none of these (the reference lists them apart). */
export const OZ_WORKER_ONLY_FLAGS: readonly string[] = [
  '--api-key-file',
  '--workspace-root',
  '--ca-file',
  '--health-listen',
  '--state-dir',
  '--oz-path',
  '--shutdown-grace-period',
  '--device-owner-user-id',
  '--device-id',
  '--device-team-id',
];

export function addWorkerOptions(command: Command): Command {
  return (
    command
      .addOption(new Option('--config-file <path>', 'Path to YAML config file').argParser(toAbsolutePath))
      .addOption(
        new Option('--backend <type>', 'Backend type (docker, direct, kubernetes, or command)')
          .default(undefined, "the config file's backend block, else docker")
          .argParser(parseBackend),
      )
      .addOption(new Option('--api-key <key>', 'API key for authentication ($WARP_API_KEY)'))
      .addOption(
        new Option('--api-key-file <path>', 'File holding the API key, used when --api-key and WARP_API_KEY are unset ($WARP_API_KEY_FILE)').argParser(
          toAbsolutePath,
        ),
      )
      .addOption(new Option('--worker-id <id>', 'Worker host identifier (required via flag or config file)'))
      // Two long names: the Helm chart passes --web-socket-url; --websocket-url is the natural spelling.
      .addOption(new Option('--websocket-url, --web-socket-url <url>', 'Dispatch server WebSocket URL').default(undefined, DEFAULT_WEB_SOCKET_URL))
      .addOption(new Option('--server-root-url <url>', 'Warp server root URL passed to the agent').default(undefined, DEFAULT_SERVER_ROOT_URL))
      .addOption(new Option('--log-level <level>', 'Log level (debug, info, warn, error)').choices(LOG_LEVELS).default('info'))
      .addOption(new Option('--target-dir <dir>', 'Run all tasks in this directory instead of creating per-task workspaces (direct backend only)'))
      .addOption(
        new Option('--workspace-root <dir>', 'Where the direct backend creates per-task workspaces (backend.direct.workspace_root)')
          .default(
            undefined,
            `${DEFAULT_WORKSPACE_ROOT} for root and systemd services, else ~/.local/share/oz-worker/workspaces (macOS: ~/Library/Application Support/oz-worker/workspaces)`,
          )
          .argParser(toAbsolutePath),
      )
      .addOption(
        new Option('--ca-file <path>', 'Extra CA certificate(s) (PEM) to trust for the dispatch server, e.g. a private CA or a TLS-inspecting proxy').argParser(
          toAbsolutePath,
        ),
      )
      .addOption(
        new Option('--health-listen <host:port>', 'Serve /livez and /readyz on this address, e.g. 127.0.0.1:8080 ($OZ_WORKER_HEALTH_LISTEN)').default(
          undefined,
          'off',
        ),
      )
      .addOption(
        new Option('--state-dir <dir>', 'Where the worker keeps its journal of pending statuses and running tasks ($OZ_WORKER_STATE_DIR)')
          .default(undefined, 'the platform state directory: ~/.local/state/oz-worker (macOS: ~/Library/Application Support/oz-worker)')
          .argParser(toAbsolutePath),
      )
      .addOption(new Option('--oz-path <path>', 'Path to the oz CLI the direct backend runs').default(undefined, 'oz on PATH').argParser(toAbsolutePath))
      .addOption(
        new Option(
          '--no-cleanup',
          'Do not remove containers after execution (for debugging); per backend: keeps the workspace (direct), the container and its per-task volumes (docker), the Job and its pod (kubernetes); the command backend leaves nothing of its own',
        ),
      )
      .addOption(
        new Option(
          '-v, --volumes <spec>',
          'Volume mounts for task containers (format: HOST_PATH:CONTAINER_PATH or HOST_PATH:CONTAINER_PATH:MODE); repeat the flag for more',
        ).argParser(collect),
      )
      .addOption(
        new Option(
          '-e, --env <entry>',
          'Environment variables for task containers (format: KEY=VALUE or KEY to pass through from host); repeat the flag for more, values may contain commas',
        ).argParser(collect),
      )
      .addOption(new Option('--max-concurrent-tasks <n>', 'Maximum number of tasks to run concurrently (0 for unlimited)').default(undefined, '0'))
      .addOption(
        new Option('--idle-on-complete <duration>', 'How long to keep the oz agent alive after a task completes, for follow-ups (e.g. 45m, 10m, 0s)').default(
          undefined,
          "45m (the agent's own default)",
        ),
      )
      .addOption(new Option('--one-shot', 'Run exactly one task, then exit once its status is delivered (direct and docker backends; concurrency 1)'))
      .addOption(new Option('--collect-task-logs', 'Collect task logs for the server (default: on; $OZ_COLLECT_TASK_LOGS)'))
      .addOption(new Option('--no-collect-task-logs', 'Do not collect task logs for the server'))
      .addOption(
        new Option(
          '--session-sharing-server-url <url>',
          'Session sharing server WebSocket URL to pass through to the oz CLI (e.g. ws://127.0.0.1:8081)',
        ).hideHelp(),
      )
      .addOption(
        new Option('--shutdown-grace-period <duration>', 'How long a graceful shutdown may take before the worker exits anyway (e.g. 25s, 2m)').default(
          undefined,
          formatGoDuration(DEFAULT_SHUTDOWN_GRACE_MS),
        ),
      )
      .addOption(new Option('--device-owner-user-id <id>', 'Device mode: run only tasks owned by this Warp user id (and pinned teams)'))
      .addOption(new Option('--device-id <id>', "Device mode: this device's id, sent to the dispatch server (which routes pinned team work by it)"))
      .addOption(new Option('--device-team-id <id>', 'Device mode: also run tasks of this Warp team id; repeat the flag for more').argParser(collect))
  );
}
