// `oz-worker admin …`: the server's administration routes from the command
// line (users, teams, members, keys, devices, pins, default agents, workers).
// The server and its admin key come from the state directory the server wrote
// (`server.json`, `admin.key`), unless --server / --api-key say otherwise.
import { commandHint } from './command-hint.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_KEY_FILE } from '../server/server.js';
import { ApiClient } from './api-client.js';
import { parseServerUrl, type RequestContext, type Source } from './client-errors.js';
import { readServerAddress, SERVER_ADDRESS_FILE } from './server-address.js';
import { stateDirFrom, UsageError } from './server-command.js';
import { LOCAL_SETTINGS_FILE, readLocalSettings } from './settings.js';
import { agentConfig, id, speakingCli, type ResolvedClient } from './task-command.js';
import { formatTable } from './task-format.js';
import { errorMessage } from '../errors/error-message.js';

export interface AdminFlags {
  server?: string;
  apiKey?: string;
  stateDir?: string;
  json?: boolean;
}

export function adminClientFrom(flags: AdminFlags, env: NodeJS.ProcessEnv = process.env): ResolvedClient {
  const stateDir = stateDirFrom(flags, env);
  let server: [string, Source] | undefined;
  if (flags.server) server = [flags.server, { kind: 'flag', flag: '--server' }];
  else if (env.OZ_SERVER_URL) server = [env.OZ_SERVER_URL, { kind: 'env', name: 'OZ_SERVER_URL' }];
  else {
    const written = readServerAddress(stateDir) ?? readLocalSettings(stateDir)?.server_url;
    const file = readServerAddress(stateDir) ? SERVER_ADDRESS_FILE : LOCAL_SETTINGS_FILE;
    if (written) server = [written, { kind: 'file', path: join(stateDir, file) }];
  }
  if (!server) {
    throw new UsageError(
      `no server has run with the state directory ${stateDir}: start one with \`${commandHint('server')}\`, pass the --state-dir it runs with, or pass --server <url> and --api-key <admin key>`,
    );
  }
  let key: [string, Source];
  if (flags.apiKey) key = [flags.apiKey, { kind: 'flag', flag: '--api-key' }];
  else if (env.OZ_ADMIN_KEY) key = [env.OZ_ADMIN_KEY, { kind: 'env', name: 'OZ_ADMIN_KEY' }];
  else {
    const path = join(stateDir, ADMIN_KEY_FILE);
    let text: string;
    try {
      text = readFileSync(path, 'utf8').trim();
    } catch (error) {
      throw new UsageError(
        `cannot read the admin key ${path} (${(error as NodeJS.ErrnoException).code ?? errorMessage(error)}): pass --api-key <admin key> or OZ_ADMIN_KEY, or the server's --state-dir`,
      );
    }
    key = [text, { kind: 'file', path }];
  }
  const serverUrl = parseServerUrl(server[0], server[1]);
  const context: RequestContext = { serverUrl, keySource: key[1], keyEnv: 'OZ_ADMIN_KEY' };
  return { client: new ApiClient(serverUrl, key[0]), context };
}

const out = (text: string): void => void process.stdout.write(`${text}\n`);

/** One admin request; prints the JSON with --json, else `describe(result)`. */
async function call<T>(flags: AdminFlags, method: string, path: string, body: unknown, describe: (result: T) => string): Promise<number> {
  const { client, context } = adminClientFrom(flags);
  const result = await speakingCli(context, () => client.request<T>(method, path, body));
  out(flags.json ? JSON.stringify(result) : describe(result));
  return 0;
}

interface UserJson {
  id: number;
  name: string;
  created_at: string;
}
interface TeamJson {
  id: number;
  name: string;
  default_agent_config: Record<string, unknown> | null;
  members: number[];
  created_at: string;
}
interface KeyJson {
  id: number;
  key?: string;
  prefix: string;
  kind: string;
  user_id: number | null;
  team_id: number | null;
  name: string;
  created_at: string;
  revoked_at: string | null;
}
interface DeviceJson {
  id: string;
  user_id: number;
  name: string;
  created_at: string;
}
interface PinJson {
  id: number;
  device_id: string;
  team_id: number;
  active: boolean;
  created_at: string;
}
interface WorkerJson {
  worker_id: string;
  identity: { kind: string; teamId?: number; userId?: number; deviceId?: string };
  /** What the worker announced on connecting; null for a worker that does not say (a Go worker before the header). */
  version?: string | null;
  active_tasks: number;
  draining: boolean;
}

const table = (header: string[], rows: string[][], empty: string): string => (rows.length === 0 ? empty : formatTable(header, rows));
const date = (iso: string): string => iso.slice(0, 19).replace('T', ' ');
const keyOwner = (key: KeyJson): string => (key.user_id !== null ? `user ${key.user_id}` : key.team_id !== null ? `team ${key.team_id}` : '-');
const teamPath = (team: string): string => `/api/v1/teams/${id(team, 'team id')}`;

export const admin = {
  userCreate: (name: string, flags: AdminFlags) => call<UserJson>(flags, 'POST', '/api/v1/users', { name }, (u) => `created user ${u.id} "${u.name}"`),
  userList: (flags: AdminFlags) =>
    call<{ users: UserJson[] }>(flags, 'GET', '/api/v1/users', undefined, ({ users }) =>
      table(
        ['ID', 'NAME', 'CREATED'],
        users.map((u) => [String(u.id), u.name, date(u.created_at)]),
        'no users',
      ),
    ),
  userRemove: (user: string, flags: AdminFlags) =>
    call(flags, 'DELETE', `/api/v1/users/${id(user, 'user id')}`, undefined, () => `removed user ${user} (its keys and memberships went with it)`),

  teamCreate: (name: string, flags: AdminFlags) => call<TeamJson>(flags, 'POST', '/api/v1/teams', { name }, (t) => `created team ${t.id} "${t.name}"`),
  teamList: (flags: AdminFlags) =>
    call<{ teams: TeamJson[] }>(flags, 'GET', '/api/v1/teams', undefined, ({ teams }) =>
      table(
        ['ID', 'NAME', 'MEMBERS', 'DEFAULT AGENT'],
        teams.map((t) => [String(t.id), t.name, t.members.join(',') || '-', t.default_agent_config ? JSON.stringify(t.default_agent_config) : '-']),
        'no teams',
      ),
    ),
  teamRemove: (team: string, flags: AdminFlags) =>
    call(flags, 'DELETE', teamPath(team), undefined, () => `removed team ${team} (its keys, memberships and pins went with it)`),

  memberAdd: (team: string, user: string, flags: AdminFlags) =>
    call<TeamJson>(
      flags,
      'POST',
      `${teamPath(team)}/members`,
      { user_id: id(user, 'user id') },
      (t) => `user ${user} is a member of team ${t.id} "${t.name}" (members: ${t.members.join(', ')})`,
    ),
  memberList: (team: string | undefined, flags: AdminFlags) =>
    call<{ teams: TeamJson[] }>(flags, 'GET', '/api/v1/teams', undefined, ({ teams }) => {
      const chosen = team === undefined ? teams : teams.filter((t) => t.id === id(team, 'team id'));
      if (team !== undefined && chosen.length === 0) throw new UsageError(`team ${team} does not exist: \`${commandHint('admin team list')}\` shows the teams`);
      return table(
        ['TEAM', 'USER'],
        chosen.flatMap((t) => t.members.map((m) => [`${t.id} (${t.name})`, String(m)])),
        'no members',
      );
    }),
  memberRemove: (team: string, user: string, flags: AdminFlags) =>
    call<TeamJson>(
      flags,
      'DELETE',
      `${teamPath(team)}/members/${id(user, 'user id')}`,
      undefined,
      (t) => `user ${user} is no longer a member of team ${t.id} "${t.name}"`,
    ),

  keyCreate: (flags: AdminFlags & { user?: string; team?: string; name?: string }) => {
    if ((flags.user === undefined) === (flags.team === undefined))
      throw new UsageError('give --user <id> (a user key) or --team <id> (a team key, for a fleet worker), one of them');
    const body = {
      ...(flags.user ? { user_id: id(flags.user, '--user') } : { team_id: id(flags.team!, '--team') }),
      ...(flags.name ? { name: flags.name } : {}),
    };
    return call<KeyJson>(
      flags,
      'POST',
      '/api/v1/keys',
      body,
      (k) => `created key ${k.id} for ${keyOwner(k)}: ${k.key}\n(shown once: keep it where only its user can read it)`,
    );
  },
  keyList: (flags: AdminFlags) =>
    call<{ keys: KeyJson[] }>(flags, 'GET', '/api/v1/keys', undefined, ({ keys }) =>
      table(
        ['ID', 'PREFIX', 'KIND', 'OWNER', 'STATE', 'NAME'],
        keys.map((k) => [String(k.id), k.prefix, k.kind, keyOwner(k), k.revoked_at ? 'revoked' : 'active', k.name]),
        'no keys',
      ),
    ),
  keyRevoke: (key: string, flags: AdminFlags) => call(flags, 'DELETE', `/api/v1/keys/${id(key, 'key id')}`, undefined, () => `revoked key ${key}`),

  deviceCreate: (user: string, name: string, flags: AdminFlags & { id?: string }) =>
    call<DeviceJson>(
      flags,
      'POST',
      '/api/v1/devices',
      { user_id: id(user, 'user id'), name, ...(flags.id ? { id: flags.id } : {}) },
      (d) => `registered device ${d.id} "${d.name}" for user ${d.user_id}`,
    ),
  deviceList: (flags: AdminFlags) =>
    call<{ devices: DeviceJson[] }>(flags, 'GET', '/api/v1/devices', undefined, ({ devices }) =>
      table(
        ['ID', 'USER', 'NAME'],
        devices.map((d) => [d.id, String(d.user_id), d.name]),
        'no devices',
      ),
    ),
  deviceRemove: (device: string, flags: AdminFlags) =>
    call(flags, 'DELETE', `/api/v1/devices/${encodeURIComponent(device)}`, undefined, () => `removed device ${device} (its pins went with it)`),

  pinCreate: (device: string, team: string, flags: AdminFlags) =>
    call<PinJson>(
      flags,
      'POST',
      `/api/v1/devices/${encodeURIComponent(device)}/pins`,
      { team_id: id(team, 'team id') },
      (p) => `pin ${p.id}: team ${p.team_id}'s tasks with --device ${p.device_id} go to that device`,
    ),
  pinList: (flags: AdminFlags) =>
    call<{ pins: PinJson[] }>(flags, 'GET', '/api/v1/pins', undefined, ({ pins }) =>
      table(
        ['ID', 'DEVICE', 'TEAM', 'STATE'],
        pins.map((p) => [String(p.id), p.device_id, String(p.team_id), p.active ? 'active' : 'archived']),
        'no pins',
      ),
    ),
  pinArchive: (pin: string, flags: AdminFlags) => call(flags, 'POST', `/api/v1/pins/${id(pin, 'pin id')}/archive`, undefined, () => `archived pin ${pin}`),

  defaultAgentSet: (team: string, config: string, flags: AdminFlags) =>
    call<TeamJson>(
      flags,
      'PUT',
      `${teamPath(team)}/default-agent`,
      { agent_config: agentConfig(config, 'the agent configuration') },
      (t) => `team ${t.id} "${t.name}" default agent: ${JSON.stringify(t.default_agent_config)}`,
    ),
  defaultAgentList: (flags: AdminFlags) =>
    call<{ teams: TeamJson[] }>(flags, 'GET', '/api/v1/teams', undefined, ({ teams }) =>
      table(
        ['TEAM', 'DEFAULT AGENT'],
        teams.map((t) => [`${t.id} (${t.name})`, t.default_agent_config ? JSON.stringify(t.default_agent_config) : '-']),
        'no teams',
      ),
    ),
  defaultAgentRemove: (team: string, flags: AdminFlags) =>
    call<TeamJson>(
      flags,
      'DELETE',
      `${teamPath(team)}/default-agent`,
      undefined,
      (t) => `team ${t.id} "${t.name}" has no default agent now; its tasks need --agent-config`,
    ),

  workerList: (flags: AdminFlags) =>
    call<{ workers: WorkerJson[] }>(flags, 'GET', '/api/v1/workers', undefined, ({ workers }) =>
      table(
        ['WORKER', 'VERSION', 'KEY OF', 'ACTIVE TASKS', 'DRAINING'],
        workers.map((w) => [
          w.worker_id,
          w.version || '-',
          w.identity.kind === 'team'
            ? `team ${w.identity.teamId}`
            : `user ${w.identity.userId}${w.identity.deviceId ? ` (device ${w.identity.deviceId})` : ''}`,
          String(w.active_tasks),
          w.draining ? 'yes' : 'no',
        ]),
        'no workers connected',
      ),
    ),
};
