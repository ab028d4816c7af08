// `oz-worker admin`: administering a local server (users, teams, members, keys,
// devices, pins, default agents, workers) without curl. The implementation is
// loaded with a dynamic import, like the other server commands.
import { Option, type Command } from 'commander';
import { run } from './local-commands.js';

type Admin = typeof import('../local/admin-command.js')['admin'];
const act =
  <A extends unknown[]>(pick: (admin: Admin) => (...args: A) => Promise<number>) =>
  async (...args: A): Promise<void> =>
    run(async () => pick((await import('../local/admin-command.js')).admin)(...args));

function adminOptions(command: Command): Command {
  return command
    .addOption(new Option('--state-dir <dir>', "The server's state directory: where it wrote server.json and admin.key ($OZ_WORKER_STATE_DIR)"))
    .addOption(new Option('--server <url>', 'Server URL ($OZ_SERVER_URL)').default(undefined, 'from the state directory'))
    .addOption(new Option('--api-key <key>', 'The admin key ($OZ_ADMIN_KEY)').default(undefined, 'admin.key in the state directory'))
    .addOption(new Option('--json', 'Print JSON'));
}

/** One noun (`user`, `team`, …) with its verbs. */
function noun(parent: Command, name: string, description: string): (verb: string, summary: string) => Command {
  const group = parent.command(name).description(description);
  return (verb, summary) => adminOptions(group.command(verb).description(summary));
}

export function registerAdminCommands(program: Command): void {
  const admin = program
    .command('admin')
    .description("Administer a local server: users, teams, members, keys, devices, pins, default agents (uses the admin key in the server's state directory)")
    .addHelpText(
      'after',
      `
Examples:
  oz-worker admin user create alice
  oz-worker admin team create ops
  oz-worker admin member add 2 2
  oz-worker admin default-agent set 2 '{"model_id":"auto"}'
  oz-worker admin key create --team 2      # a key for a fleet worker of team 2
`,
    );

  const user = noun(admin, 'user', 'Users');
  user('create', 'Create a user')
    .argument('<name>')
    .action(act((a) => a.userCreate));
  user('list', 'List users').action(act((a) => a.userList));
  user('remove', 'Remove a user without task history (its keys and memberships go too)')
    .argument('<id>')
    .action(act((a) => a.userRemove));

  const team = noun(admin, 'team', 'Teams');
  team('create', 'Create a team')
    .argument('<name>')
    .action(act((a) => a.teamCreate));
  team('list', 'List teams with their members and default agent').action(act((a) => a.teamList));
  team('remove', 'Remove a team without task history (its keys, memberships and pins go too)')
    .argument('<id>')
    .action(act((a) => a.teamRemove));

  const member = noun(admin, 'member', 'Team memberships');
  member('add', 'Make a user a member of a team')
    .alias('create')
    .argument('<team-id>')
    .argument('<user-id>')
    .action(act((a) => a.memberAdd));
  member('list', 'List members (of one team, or of all)')
    .argument('[team-id]')
    .action(act((a) => a.memberList));
  member('remove', 'Remove a user from a team')
    .argument('<team-id>')
    .argument('<user-id>')
    .action(act((a) => a.memberRemove));

  const key = noun(admin, 'key', 'API keys');
  key('create', 'Create a user key (--user) or a team key for fleet workers (--team); the key is shown once')
    .addOption(new Option('--user <id>', 'A key of this user'))
    .addOption(new Option('--team <id>', 'A key of this team'))
    .addOption(new Option('--name <text>', 'A note saying what the key is for'))
    .action(act((a) => a.keyCreate));
  key('list', 'List keys (prefixes only)').action(act((a) => a.keyList));
  key('revoke', 'Revoke a key')
    .alias('remove')
    .argument('<id>')
    .action(act((a) => a.keyRevoke));

  const device = noun(admin, 'device', "Devices (a user's machine running a device worker with --device-id)");
  device('create', 'Register a device of a user')
    .argument('<user-id>')
    .argument('<name>')
    .addOption(new Option('--id <device-id>', 'The device id its worker passes as --device-id').default(undefined, 'generated'))
    .action(act((a) => a.deviceCreate));
  device('list', 'List devices').action(act((a) => a.deviceList));
  device('remove', 'Remove a device no task was routed to (its pins go too)')
    .argument('<id>')
    .action(act((a) => a.deviceRemove));

  const pin = noun(admin, 'pin', "Pins (a team's device-routed tasks go to that device)");
  pin('create', 'Pin a device to a team')
    .argument('<device-id>')
    .argument('<team-id>')
    .action(act((a) => a.pinCreate));
  pin('list', 'List pins').action(act((a) => a.pinList));
  pin('archive', 'Archive a pin (it grants nothing afterwards)')
    .alias('remove')
    .argument('<id>')
    .action(act((a) => a.pinArchive));

  const agent = noun(admin, 'default-agent', "Teams' default agent configurations (used by tasks submitted without --agent-config)");
  agent('set', "Set a team's default agent configuration")
    .argument('<team-id>')
    .argument('<json|@file>')
    .action(act((a) => a.defaultAgentSet));
  agent('list', "List the teams' default agents").action(act((a) => a.defaultAgentList));
  agent('remove', "Remove a team's default agent")
    .argument('<team-id>')
    .action(act((a) => a.defaultAgentRemove));

  const worker = noun(admin, 'worker', 'Connected workers');
  worker('list', 'List the workers connected now').action(act((a) => a.workerList));
}
