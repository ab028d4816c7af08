// What the command-line clients (`oz-worker task`, `oz-worker admin`) print for a
// refused request: the server's answers are written for HTTP callers, so the
// ones a CLI user meets are said again in terms of the CLI's own flags.
import { commandHint } from './command-hint.js';
import { UsageError } from './server-command.js';

/** Where the client's server URL or key came from, as a user would name it. */
export type Source = { kind: 'flag'; flag: string } | { kind: 'env'; name: string } | { kind: 'file'; path: string };

export interface RequestContext {
  serverUrl: string;
  keySource: Source;
  /** The task id the command is about, if any. */
  taskId?: string;
  /** The team a submitted task belongs to, when known. */
  teamId?: number;
  /** The environment variable that would hold the key (default OZ_API_KEY). */
  keyEnv?: string;
}

/** Where to look when the server names a thing that does not exist. */
const LIST_HINTS: Record<string, string> = {
  unknown_user: `\`${commandHint('admin user list')}\` shows the users`,
  unknown_team: `\`${commandHint('admin team list')}\` shows the teams`,
  unknown_key: `\`${commandHint('admin key list')}\` shows the keys`,
  unknown_pin: `\`${commandHint('admin pin list')}\` shows the pins`,
};

export interface ApiRefusal {
  message: string;
  status?: number | undefined;
  code?: string | undefined;
}

const describeSource = (source: Source): string =>
  source.kind === 'flag' ? `given with ${source.flag}` : source.kind === 'env' ? `from $${source.name}` : `from ${source.path}`;

/** The first clause of a server sentence: the fact, without its HTTP advice. */
const fact = (message: string): string => message.split(';')[0]!.trim();

/** The sentence to print for a refused request. */
export function cliMessage(refusal: ApiRefusal, context: RequestContext): string {
  const { status, code, message } = refusal;
  if (status === 401 || code === 'unauthorized') {
    const stale =
      context.keySource.kind === 'file' && context.keySource.path.endsWith('local.json')
        ? `; if that file is from an earlier server, run \`${commandHint('local')}\` again to refresh it`
        : '';
    return `the server at ${context.serverUrl} does not accept the API key ${describeSource(context.keySource)}: pass one of its keys with --api-key <key> or ${context.keyEnv ?? 'OZ_API_KEY'}${stale}`;
  }
  if (code === 'forbidden' && context.taskId !== undefined && message === 'Forbidden') {
    return `no task ${context.taskId} is visible to this key: it does not exist, or another user or team owns it (\`${commandHint('task list')}\` shows yours)`;
  }
  if (code === 'no_default_agent') {
    const team = context.teamId ?? /^team (\d+)\b/.exec(message)?.[1] ?? '<team id>';
    return `${fact(message)}: pass one with --agent-config '{"model_id":"auto"}' (or --agent-config @file.json), or give the team a default with \`${commandHint(`admin default-agent set ${team} '{"model_id":"auto"}'`)}\``;
  }
  if (code === 'unknown_device')
    return `${fact(message)}: \`${commandHint('admin device list')}\` shows the registered devices, \`${commandHint('admin device create')}\` adds one`;
  if (code !== undefined && LIST_HINTS[code] && message.includes('/api/v1/')) return `${fact(message)}: ${LIST_HINTS[code]}`;
  if (code === 'admin_required') {
    return `this needs the server's admin key, not the key ${describeSource(context.keySource)}: leave --api-key out to use admin.key from the server's --state-dir, or pass that key with --api-key or OZ_ADMIN_KEY`;
  }
  return message;
}

/** The server URL as a URL, or a usage error naming where the text came from. */
export function parseServerUrl(text: string, source: Source): string {
  const where = source.kind === 'flag' ? source.flag : source.kind === 'env' ? `$${source.name}` : `server_url in ${source.path}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`invalid ${where} ${JSON.stringify(text)}: not a URL; give the server's address, e.g. http://127.0.0.1:7317`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`invalid ${where} ${JSON.stringify(text)}: use an http:// or https:// URL, e.g. http://127.0.0.1:7317`);
  }
  return url.href;
}
