// `oz-worker task submit|list|show|cancel|watch`: the local server's tasks from
// the command line. Server and key come from flags, the environment, or the
// `local.json` that `oz-worker local` wrote.
import { readFileSync } from 'node:fs';
import { ApiClient, ApiClientError, type TaskEventJson, type TaskJson } from './api-client.js';
import { stateDirFrom, UsageError } from './server-command.js';
import { readLocalSettings } from './settings.js';

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

export function clientFrom(flags: ClientFlags, env: NodeJS.ProcessEnv = process.env): ApiClient {
  const settings = readLocalSettings(stateDirFrom(flags, env));
  const server = flags.server || env.OZ_SERVER_URL || settings?.server_url;
  const key = flags.apiKey || env.OZ_API_KEY || settings?.user_key;
  if (!server || !key) {
    throw new UsageError('no server to talk to: run `oz-worker local` first, or pass --server <url> and --api-key <key> (or set OZ_SERVER_URL and OZ_API_KEY)');
  }
  return new ApiClient(server, key);
}

function id(text: string, flag: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || !Number.isSafeInteger(value)) throw new UsageError(`invalid ${flag} ${JSON.stringify(text)}: use a numeric id`);
  return value;
}

function agentConfig(text: string): unknown {
  const source = text.startsWith('@') ? readAgentConfigFile(text.slice(1)) : text;
  try {
    return JSON.parse(source);
  } catch (error) {
    throw new UsageError(`--agent-config is not valid JSON (${(error as Error).message}); pass a JSON object or @file.json`);
  }
}

function readAgentConfigFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read --agent-config file ${path}: ${(error as Error).message}`);
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
  return rows
    .filter(([, value]) => value !== null && value !== '')
    .map(([label, value]) => `${label.padEnd(15)} ${value}`)
    .join('\n');
}

const formatEvent = (event: TaskEventJson): string => `${event.at.slice(11, 19)}  ${event.kind.padEnd(18)} ${event.detail}`;

/** 0 for a completed task, 1 otherwise: scripts can `oz-worker task watch <id> && …`. */
const exitCodeFor = (task: TaskJson): number => (task.state === 'completed' ? 0 : 1);

async function watchTask(client: ApiClient, taskId: string, json: boolean): Promise<number> {
  const final = await client.watch(taskId, (event) => out(json ? JSON.stringify(event) : formatEvent(event)));
  if (!json) out(`task ${final.state}${final.exit_code ? ` (exit code ${final.exit_code})` : ''}${final.message ? `: ${final.message}` : ''}`);
  return exitCodeFor(final);
}

export async function submitCommand(prompt: string[], flags: SubmitFlags): Promise<number> {
  if (flags.team && flags.user) throw new UsageError('give --team or --user, not both');
  const client = clientFrom(flags);
  const body: Record<string, unknown> = { prompt: prompt.join(' ') };
  if (flags.team) body.owner = { type: 'TEAM', id: id(flags.team, '--team') };
  if (flags.user) body.owner = { type: 'USER', id: id(flags.user, '--user') };
  if (flags.device) body.device_id = flags.device;
  if (flags.title) body.title = flags.title;
  if (flags.agentConfig) body.agent_config = agentConfig(flags.agentConfig);
  const task = await client.submitTask(body);
  out(flags.json ? JSON.stringify(task) : `submitted task ${task.id} (${task.owner.type} ${task.owner.id})`);
  return flags.watch ? watchTask(client, task.id, flags.json ?? false) : 0;
}

export async function listCommand(flags: ClientFlags & { state?: string }): Promise<number> {
  const { tasks } = await clientFrom(flags).listTasks(flags.state);
  if (flags.json) out(JSON.stringify(tasks));
  else if (tasks.length === 0) out('no tasks');
  else for (const task of tasks) out(`${task.id}  ${task.state.padEnd(9)} ${`${task.owner.type} ${task.owner.id}`.padEnd(10)} ${task.title}`);
  return 0;
}

export async function showCommand(taskId: string, flags: ClientFlags): Promise<number> {
  const task = await clientFrom(flags).task(taskId);
  out(flags.json ? JSON.stringify(task) : describe(task));
  return 0;
}

export async function cancelCommand(taskId: string, flags: ClientFlags): Promise<number> {
  const { outcome, task } = await clientFrom(flags).cancelTask(taskId);
  if (flags.json) out(JSON.stringify({ outcome, task }));
  else out(outcome === 'cancelled' ? `task ${task.id} cancelled` : `cancellation sent to worker ${task.worker_id ?? '?'}; \`oz-worker task watch ${task.id}\` shows when it stops`);
  return 0;
}

const isOutput = (event: TaskEventJson): boolean => event.kind === 'stdout' || event.kind === 'stderr' || event.kind === 'output_truncated';

function printOutput(event: TaskEventJson): void {
  if (!isOutput(event)) return;
  const stream = event.kind === 'stdout' ? process.stdout : process.stderr;
  stream.write(`${event.kind === 'output_truncated' ? `[${event.detail}]` : event.detail}\n`);
}

/** The agent's output kept by the server (sent by workers connected to the local server); --follow until the task ends. */
export async function logsCommand(taskId: string, flags: ClientFlags & { follow?: boolean }): Promise<number> {
  const client = clientFrom(flags);
  if (flags.follow) {
    const final = await client.watch(taskId, (event) => (flags.json ? isOutput(event) && out(JSON.stringify(event)) : printOutput(event)));
    return exitCodeFor(final);
  }
  const { events } = await client.events(taskId, 0, 0);
  const output = events.filter(isOutput);
  if (flags.json) out(JSON.stringify(output));
  else output.forEach(printOutput);
  return 0;
}

export async function watchCommand(taskId: string, flags: ClientFlags): Promise<number> {
  return watchTask(clientFrom(flags), taskId, flags.json ?? false);
}

export { ApiClientError };
