// The contract between the worker core and a way of running the agent.
import type { Logger } from '../log/logger.js';
import type { SetupEventName } from '../protocol/client-events.js';
import type { InstanceShape, SidecarMount, Task } from '../protocol/messages.js';

export const BACKEND_NAMES = ['docker', 'direct', 'kubernetes', 'command'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/** What a backend supports besides running tasks; settings that need it are refused at start-up otherwise. */
export interface BackendCapabilities {
  /**
   * One-shot mode: one task, then the worker exits. It fits a backend whose
   * worker lives and dies with the task's sandbox (a throwaway machine running
   * one agent, locally or in one container), not one that hands tasks to a
   * cluster or a dispatch script, which outlive the worker.
   */
  oneShot: boolean;
}

// The Go worker enables one-shot mode for its direct backend only (its Docker
// backend "could work but is not enabled"); oz-worker's Docker backend takes it
// too, so a Go config pairing `one_shot` with Docker settings is not refused.
export const BACKEND_CAPABILITIES: Readonly<Record<BackendName, BackendCapabilities>> = {
  direct: { oneShot: true },
  docker: { oneShot: true },
  kubernetes: { oneShot: false },
  command: { oneShot: false },
};

/** Everything a backend needs to launch one task, built once per task. */
export interface TaskParams {
  /** The envelope `task_id`: the key for all bookkeeping and every status message. */
  taskId: string;
  executionId: string;
  task: Task;
  /** Agent argv without the program name (starts with `agent run`). */
  args: string[];
  /**
   * The task's `mcp_servers` as the JSON the agent's `--mcp` gets and the
   * dispatch payload carries: byte for byte as the server sent each value,
   * names sorted. Undefined when the task has no servers (or an empty map).
   */
  mcpServers: string | undefined;
  /** Common task environment as ordered `KEY=VALUE` entries (duplicates possible; later wins). */
  env: string[];
  image: string;
  sidecars: SidecarMount[];
  instanceShape: InstanceShape | undefined;
}

export type ExecutionOutcome =
  /** The agent ran to a successful end. */
  | { kind: 'completed' }
  /** Handed off to a system that reports by itself (command backend's dispatch): no terminal message. */
  | { kind: 'handedOff' };

export interface TaskRun {
  params: TaskParams;
  /** Fires when the task must stop; `signal.reason` is a CancellationSource. */
  signal: AbortSignal;
  log: Logger;
  /**
   * Hands over work that must finish before the task's slot is free (stopping
   * leftover processes, removing the workspace) but need not delay the report
   * of the outcome. Without it the backend finishes that work before it resolves.
   */
  afterOutcome?: (cleanup: Promise<void>) => void;
  /** One line of the agent's output (already in the log); forwarded to a server that takes it. */
  output?: (stream: 'stdout' | 'stderr', line: string) => void;
  /**
   * Keeps what a crash of the worker would leave behind (processes, a
   * workspace) in the journal, so the next start can clean it up; `undefined`
   * once nothing is left. `key` tells one run's note from another's (a re-run
   * of the task id); the note is JSON, read back by `recoverLeftovers`.
   */
  recordLeftovers?: (key: string, note: LeftoverNote | undefined) => void;
  /**
   * One setup phase of the task ended (image pull, container start, pod
   * schedule…), for the server's setup timings. Returns at once: the core
   * reports it in the background, and drops it once the task is being stopped.
   */
  setupPhase?: (name: SetupEventName, start: Date, finish: Date, isError: boolean) => void;
  /**
   * The task's log export (OTLP, to the collector the assignment names), when
   * the assignment asks for it and the operator allows it; absent otherwise.
   * The backend feeds it the agent's and the hooks' output and names the
   * values it added to the task's environment, which are redacted too.
   */
  taskLogs?: TaskLogs;
}

/** One output stream on its way to the task's log export; takes bytes in any chunking. */
export interface TaskLogWriter {
  write(chunk: Buffer | string): void;
  /** The stream ended: its unterminated last line goes out. */
  end(): void;
}

export interface TaskLogs {
  /**
   * A writer for one source: `agent.stdout`, `hook.stderr`, `container.stdout`, `pod.<container>`.
   * `attributes` go on each of its records (copied now). Past 128 writers a task's writers are silent.
   */
  writer(source: string, attributes?: Readonly<Record<string, string>>): TaskLogWriter;
  /** Values never to appear in an exported record (the operator's environment, variables a setup script wrote). */
  redact(values: Iterable<string>): void;
  /** Fires once the export is shut down: what still follows output for it (log streams) stops. */
  readonly closed: AbortSignal;
}

/** What a backend wrote down about a task's leftovers; opaque to the core. */
export type LeftoverNote = Record<string, unknown>;

/** A task this worker started before a restart, still running (or ended) in the backend. */
export interface ResumableTask {
  taskId: string;
  executionId: string;
  /** Watches the task to its end, as executeTask would have. */
  resume(run: Omit<TaskRun, 'params'>): Promise<ExecutionOutcome>;
}

export interface Backend {
  readonly name: BackendName;
  /** Whether running tasks survive a worker shutdown (Kubernetes Jobs, tasks handed off by a dispatch command). */
  readonly preservesTasksOnShutdown: boolean;
  /**
   * Runs one task. Resolves with the outcome; rejects with a TaskFailure, or a
   * TaskCancelled when `signal` stopped it.
   */
  executeTask(run: TaskRun): Promise<ExecutionOutcome>;
  /** Best-effort extra work on a server cancellation (the abort signal also fires). */
  cancelTask?(ids: { taskId: string; executionId: string }): Promise<void>;
  /** Tasks started by an earlier run of this worker (same worker id), to report their outcome. */
  resumableTasks?(): Promise<ResumableTask[]>;
  /**
   * Cleans up after tasks of a previous run of this worker that died with it
   * (their notes from the journal): stops their processes, removes their
   * workspaces. Runs in the background (`shutdown` waits for it) and calls
   * `cleared` with each note's key once it is done.
   */
  recoverLeftovers?(notes: ReadonlyArray<{ key: string; taskId: string; note: LeftoverNote }>, cleared: (key: string) => void): void;
  /** Releases backend resources; called once, after tasks were stopped or preserved. */
  shutdown(): Promise<void>;
}
