// The local dispatch server and its tools: `server`, `local` and `task`. Each
// action loads its implementation with a dynamic import, so the worker's own
// start-up never pays for the server, its database or the HTTP client.
import { Option, type Command } from 'commander';
import { commandHint } from '../local/command-hint.js';
import { errorMessage } from '../errors/error-message.js';

const EXIT_USAGE = 2;

/** Runs an action; known errors become one `oz-worker: error:` line and an exit code. */
export async function run(action: () => Promise<number>): Promise<void> {
  let code: number;
  try {
    code = await action();
  } catch (error) {
    const { UsageError } = await import('../local/server-command.js');
    const message = errorMessage(error);
    process.stderr.write(`oz-worker: error: ${message}\n`);
    code = error instanceof UsageError ? EXIT_USAGE : 1;
  }
  process.stdout.write('', () => process.exit(code));
}

function serverOptions(command: Command): Command {
  return command
    .addOption(new Option('--listen <host:port>', 'Address to listen on (loopback only unless --allow-remote)').default(undefined, '127.0.0.1:7317'))
    .addOption(new Option('--allow-remote', 'Allow --listen on a non-loopback address'))
    .addOption(new Option('--state-dir <dir>', 'Where the database and keys live ($OZ_WORKER_STATE_DIR)').default(undefined, 'the platform state directory'))
    .addOption(new Option('--claim-timeout <duration>', 'Send an assignment again when not claimed within this').default(undefined, '30s'))
    .addOption(
      new Option('--lost-timeout <duration>', 'Mark a running task lost when its worker stays away, or comes back without confirming it, this long').default(
        undefined,
        '5m',
      ),
    )
    .addOption(
      new Option('--max-queued-per-principal <n>', 'Most tasks one user or team may have waiting for a worker; more get 429').default(undefined, '1000'),
    )
    .addOption(new Option('--log-level <level>', 'Log level').choices(['debug', 'info', 'warn', 'error']));
}

function clientOptions(command: Command): Command {
  return command
    .addOption(new Option('--server <url>', 'Server URL ($OZ_SERVER_URL)').default(undefined, 'from `oz-worker local`'))
    .addOption(new Option('--api-key <key>', 'A user or team key of that server ($OZ_API_KEY)').default(undefined, "the demo user's"))
    .addOption(new Option('--state-dir <dir>', 'Where `oz-worker local` keeps local.json'))
    .addOption(new Option('--json', 'Print JSON'));
}

export function registerLocalCommands(program: Command): void {
  serverOptions(
    program
      .command('server')
      .description('Run the local dispatch server: the server half of the worker protocol, with a JSON HTTP API')
      .addHelpText('after', () => `\nExample:\n  ${commandHint('server --state-dir ./oz-state')}\n`),
  ).action(async (flags) => run(async () => (await import('../local/server-command.js')).runServerCommand(flags)));

  serverOptions(
    program
      .command('local')
      .description(
        "Run the local server and two workers connected to it (one runs the demo team's tasks, one the demo user's); seeds the demo user, team and keys on first run",
      )
      .addOption(new Option('--backend <type>', 'Backend of both workers').default(undefined, 'direct'))
      .addOption(new Option('--oz-path <path>', 'The oz CLI for the direct backend').default(undefined, 'oz on PATH, else the stand-in example agent'))
      .addOption(new Option('--config-file <path>', 'Config file of both workers').default(undefined, 'one written under the state directory'))
      .addOption(new Option('--max-concurrent-tasks <n>', 'Passed to both workers'))
      .addOption(new Option('--demo', 'Submit two demo tasks, one owned by the demo user and one by its team, and show them run'))
      .addOption(new Option('--once', 'Exit after the demo tasks (exit code 0 when both completed)'))
      .addHelpText('after', () => `\nExamples:\n  ${commandHint('local --demo')}\n  ${commandHint('local --backend docker')}\n`),
  ).action(async (flags) => run(async () => (await import('../local/server-command.js')).runLocalCommand(flags)));

  const task = program.command('task').description('Submit, list, show, cancel, watch tasks on the local server and read their output');
  clientOptions(
    task
      .command('submit')
      .description("Submit a task, owned by you (the key's user, or its team) unless --team or --user is given")
      .argument('<prompt...>', 'What the agent should do')
      .addOption(new Option('--team <id>', 'Owner: this team (the agent gets --share team:edit)'))
      .addOption(new Option('--user <id>', 'Owner: this user'))
      .addOption(new Option('--device <id>', 'Route the task to this device worker'))
      .addOption(new Option('--title <text>', 'Task title').default(undefined, 'the start of the prompt'))
      .addOption(new Option('--agent-config <json|@file>', 'Agent configuration').default(undefined, "the owning team's default"))
      .addOption(new Option('--watch', 'Show progress until the task ends')),
  ).action(async (prompt: string[], flags) => run(async () => (await import('../local/task-command.js')).submitCommand(prompt, flags)));
  clientOptions(task.command('list').description('List your tasks').addOption(new Option('--state <state>', 'Only tasks in this state'))).action(
    async (flags) => run(async () => (await import('../local/task-command.js')).listCommand(flags)),
  );
  clientOptions(task.command('show').description('Show a task').argument('<id>')).action(async (id: string, flags) =>
    run(async () => (await import('../local/task-command.js')).showCommand(id, flags)),
  );
  clientOptions(task.command('cancel').description('Cancel a task').argument('<id>')).action(async (id: string, flags) =>
    run(async () => (await import('../local/task-command.js')).cancelCommand(id, flags)),
  );
  clientOptions(
    task
      .command('logs')
      .description("Print the agent's output (kept when the worker is connected to this server)")
      .argument('<id>')
      .addOption(new Option('--follow', 'Keep printing until the task ends (exit code 0 when it completed)'))
      .addOption(
        new Option(
          '--exported',
          "Print the task logs the worker exported instead: the agent's, the hooks', the containers' and pods' output, each line as [source] text",
        ),
      ),
  ).action(async (id: string, flags) => run(async () => (await import('../local/task-command.js')).logsCommand(id, flags)));
  clientOptions(task.command('watch').description("Show a task's progress until it ends (exit code 0 when it completed)").argument('<id>')).action(
    async (id: string, flags) => run(async () => (await import('../local/task-command.js')).watchCommand(id, flags)),
  );
}
