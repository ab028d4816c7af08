// `oz-worker task submit|list|show|cancel|watch`: the local server's tasks from
// the command line. Server and key come from flags, the environment, or the
// `local.json` that `oz-worker local` wrote.
import { commandHint } from './command-hint.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient, ApiClientError, type TaskEventJson, type TaskJson } from './api-client.js';
import { cliMessage, parseServerUrl, type RequestContext, type Source } from './client-errors.js';
import { readServerAddress, SERVER_ADDRESS_FILE } from './server-address.js';
import { stateDirFrom, UsageError } from './server-command.js';
import { LOCAL_SETTINGS_FILE, readLocalSettings } from './settings.js';
import { formatEvent, formatFailureDetails, formatTaskTable } from './task-format.js';
import { errorMessage } from '../errors/error-message.js';

export interface ClientFlags {
  server?: string;
  apiKey?: string;
  stateDir?: string;
  json?: boolean;
}

export interface SubmitFlags extends ClientFlags {
  team?: string;
  user?: string;
  device?: string;
  title?: string;
  agentConfig?: string;
  watch?: boolean;
}

/** A client for the server the flags, the environment or `local.json` name, and where its key came from. */
export interface ResolvedClient {
  client: ApiClient;
  context: RequestContext;
}

export function clientFrom(flags: ClientFlags, env: NodeJS.ProcessEnv = process.env): ResolvedClient {
  const stateDir = stateDirFrom(flags, env);
  const settings = readLocalSettings(stateDir);
  const file: Source = { kind: 'file', path: join(stateDir, LOCAL_SETTINGS_FILE) };
  const written = readServerAddress(stateDir);
  const server: [string, Source] | undefined = flags.server
    ? [flags.server, { kind: 'flag', flag: '--server' }]
    : env.OZ_SERVER_URL
      ? [env.OZ_SERVER_URL, { kind: 'env', name: 'OZ_SERVER_URL' }]
      : settings
        ? [settings.server_url, file]
        : written
          ? [written, { kind: 'file', path: join(stateDir, SERVER_ADDRESS_FILE) }]
          : undefined;
  const key: [string, Source] | undefined = flags.apiKey
    ? [flags.apiKey, { kind: 'flag', flag: '--api-key' }]
    : env.OZ_API_KEY
      ? [env.OZ_API_KEY, { kind: 'env', name: 'OZ_API_KEY' }]
      : settings && [settings.user_key, file];
  if (!server) {
    throw new UsageError(
      `no server to talk to: run \`${commandHint('local')}\` first, or pass --server <url> and --api-key <key> (or set OZ_SERVER_URL and OZ_API_KEY)`,
    );
  }
  if (!key) {
    throw new UsageError(
      `no API key for the server at ${server[0]}: pass --api-key <key> or set OZ_API_KEY (make a user key with \`${commandHint('admin key create --user <id>')}\`)`,
    );
  }
  const serverUrl = parseServerUrl(server[0], server[1]);
  return { client: new ApiClient(serverUrl, key[0]), context: { serverUrl, keySource: key[1] } };
}

/** Runs one request; a refusal is said again in the CLI's terms. */
export async function speakingCli<T>(context: RequestContext, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    if (error instanceof ApiClientError) throw new ApiClientError(cliMessage(error, context), error.status, error.code);
    throw error;
  }
}

/** A positive whole-number id given on the command line. */
export function id(text: string, flag: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || !Number.isSafeInteger(value)) throw new UsageError(`invalid ${flag} ${JSON.stringify(text)}: use a numeric id`);
  return value;
}

/** `--agent-config` text: JSON, or @file holding JSON. */
export function agentConfig(text: string, flag = '--agent-config'): unknown {
  const source = text.startsWith('@') ? readAgentConfigFile(text.slice(1), flag) : text;
  try {
    return JSON.parse(source);
  } catch (error) {
    throw new UsageError(`${flag} is not valid JSON (${errorMessage(error)}); pass a JSON object or @file.json`);
  }
}

function readAgentConfigFile(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${flag} file ${path}: ${errorMessage(error)}`);
  }
}

const out = (text: string): void => void process.stdout.write(`${text}\n`);

function describe(task: TaskJson): string {
  const rows: [string, string | number | null][] = [
    ['id', task.id],
    ['title', task.title],
    ['owner', `${task.owner.type} ${task.owner.id}`],
    ['state', task.state],
    ['waiting', task.waiting_reason ?? null],
    ['worker', task.worker_id],
    ['device', task.device_id],
    ['attempts', task.attempts],
    ['exit code', task.exit_code],
    ['failure reason', task.failure_reason],
    ['message', task.message],
    ['created', task.created_at],
    ['claimed', task.claimed_at],
    ['finished', task.finished_at],
  ];
  const [first, ...more] = formatFailureDetails(task.failure_details);
  if (first !== undefined) rows.push(['failure details', first], ...more.map((line): [string, string] => ['', line]));
  return rows
    .filter(([, value]) => value !== null && value !== '')
    .map(([label, value]) => `${label.padEnd(15)} ${value}`)
    .join('\n');
}

/** 0 for a completed task, 1 otherwise: scripts can `oz-worker task watch <id> && …`. */
const exitCodeFor = (task: TaskJson): number => (task.state === 'completed' ? 0 : 1);

/** A record of the task's exported logs (shown by `task logs --exported`, not among its events). */
const isExportedLog = (event: TaskEventJson): boolean => event.kind === 'log';

async function watchTask({ client, context }: ResolvedClient, taskId: string, json: boolean): Promise<number> {
  const final = await speakingCli({ ...context, taskId }, () =>
    client.watch(taskId, (event) => !isExportedLog(event) && out(json ? JSON.stringify(event) : formatEvent(event))),
  );
  if (!json) {
    out(`task ${final.state}${final.exit_code ? ` (exit code ${final.exit_code})` : ''}${final.message ? `: ${final.message}` : ''}`);
    for (const line of formatFailureDetails(final.failure_details)) out(`  ${line}`);
  }
  return exitCodeFor(final);
}

export async function submitCommand(prompt: string[], flags: SubmitFlags): Promise<number> {
  if (flags.team && flags.user) throw new UsageError('give --team or --user, not both');
  const text = prompt.join(' ');
  if (text.trim() === '') throw new UsageError(`the prompt is empty: say what the agent should do, e.g. ${commandHint('task submit "fix the flaky test"')}`);
  const resolved = clientFrom(flags);
  const body: Record<string, unknown> = { prompt: text };
  const teamId = flags.team ? id(flags.team, '--team') : undefined;
  if (teamId !== undefined) body.owner = { type: 'TEAM', id: teamId };
  if (flags.user) body.owner = { type: 'USER', id: id(flags.user, '--user') };
  if (flags.device) body.device_id = flags.device;
  if (flags.title) body.title = flags.title;
  if (flags.agentConfig) body.agent_config = agentConfig(flags.agentConfig);
  const task = await speakingCli({ ...resolved.context, ...(teamId === undefined ? {} : { teamId }) }, () => resolved.client.submitTask(body));
  out(flags.json ? JSON.stringify(task) : `submitted task ${task.id} (${task.owner.type} ${task.owner.id})`);
  return flags.watch ? watchTask(resolved, task.id, flags.json ?? false) : 0;
}

export async function listCommand(flags: ClientFlags & { state?: string }): Promise<number> {
  const { client, context } = clientFrom(flags);
  const { tasks } = await speakingCli(context, () => client.listTasks(flags.state));
  if (flags.json) out(JSON.stringify(tasks));
  else if (tasks.length === 0) out('no tasks');
  else out(formatTaskTable(tasks, new Date()));
  return 0;
}

export async function showCommand(taskId: string, flags: ClientFlags): Promise<number> {
  const { client, context } = clientFrom(flags);
  const task = await speakingCli({ ...context, taskId }, () => client.task(taskId));
  out(flags.json ? JSON.stringify(task) : describe(task));
  return 0;
}

export async function cancelCommand(taskId: string, flags: ClientFlags): Promise<number> {
  const { client, context } = clientFrom(flags);
  const { outcome, task } = await speakingCli({ ...context, taskId }, () => client.cancelTask(taskId));
  if (flags.json) out(JSON.stringify({ outcome, task }));
  else
    out(
      outcome === 'cancelled'
        ? `task ${task.id} cancelled`
        : `cancellation sent to worker ${task.worker_id ?? '?'}; \`${commandHint(`task watch ${task.id}`)}\` shows when it stops`,
    );
  return 0;
}

const isOutput = (event: TaskEventJson): boolean => event.kind === 'stdout' || event.kind === 'stderr' || event.kind === 'output_truncated';
const isExported = (event: TaskEventJson): boolean => isExportedLog(event) || event.kind === 'logs_truncated';

function printOutput(event: TaskEventJson): void {
  if (isExportedLog(event)) out(event.detail);
  else if (event.kind === 'output_truncated' || event.kind === 'logs_truncated') process.stderr.write(`[${event.detail}]\n`);
  else (event.kind === 'stdout' ? process.stdout : process.stderr).write(`${event.detail}\n`);
}

/**
 * The agent's output kept by the server (sent by workers connected to the
 * local server); with --exported, the task logs the worker exported instead
 * (agent, hooks, containers, pods: `[source] line`); --follow until the task ends.
 */
export async function logsCommand(taskId: string, flags: ClientFlags & { follow?: boolean; exported?: boolean }): Promise<number> {
  const { client, context } = clientFrom(flags);
  const request = { ...context, taskId };
  const wanted = flags.exported ? isExported : isOutput;
  if (flags.follow) {
    const final = await speakingCli(request, () =>
      client.watch(taskId, (event) => wanted(event) && (flags.json ? out(JSON.stringify(event)) : printOutput(event))),
    );
    return exitCodeFor(final);
  }
  const { events } = await speakingCli(request, () => client.events(taskId, 0, 0));
  const output = events.filter(wanted);
  if (flags.json) out(JSON.stringify(output));
  else output.forEach(printOutput);
  return 0;
}

export async function watchCommand(taskId: string, flags: ClientFlags): Promise<number> {
  return watchTask(clientFrom(flags), taskId, flags.json ?? false);
}

export { ApiClientError };
