// The `oz-worker` command line. With no sub-command it runs the worker (the Go
// worker's flags, unchanged); sub-commands add the local dispatch server and tools.
// Building the program runs nothing (scripts/reference.mjs reads its options);
// src/cli/main.ts runs it.
import { Command, CommanderError, Help, type Option } from 'commander';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load-file.js';
import { defaultConfigFile, platformDirs } from '../config/locations.js';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { apiKeyFileSource, keyFilePermissionWarning, readSecretFile, resolveWorkerConfig, type WorkerFlags } from '../config/resolve.js';
import { registerServiceCommands } from '../service/service-command.js';
import { registerAdminCommands } from './admin-commands.js';
import { registerLocalCommands } from './local-commands.js';
import { registerOperatorCommands } from './operator-commands.js';
import { addWorkerOptions, expandBooleanFlagValues } from './worker-options.js';
import { COMMAND_LINE_KEY_WARNING, concealApiKey } from './conceal-api-key.js';
import { commandHint } from '../local/command-hint.js';
import { closestName } from './suggest.js';

import { VERSION } from '../version.js';
import { errorMessage } from '../errors/error-message.js';

/** Spelled the way the commands run where the user is (see commandHint). */
const examples = (): string => `
Examples:
  # Run tasks as local processes, connected to Warp
  WARP_API_KEY=... ${commandHint('--worker-id my-laptop --backend direct')}

  # Use a config file (same keys as oz-agent-worker)
  ${commandHint('--config-file /etc/oz-worker/config.yaml')}

  # Pass environment to every task
  ${commandHint('--worker-id w1 --backend direct -e GITHUB_TOKEN -e LOG_LEVEL=debug')}

  # Help for one command
  ${commandHint('help local')}
`;

/** Usage and configuration problems exit with 2; runtime failures with 1. */
const EXIT_USAGE = 2;

function fail(message: string, code: number): never {
  process.stderr.write(`oz-worker: error: ${message}\n`);
  process.exit(code);
}

/** What a first-time user sees instead of a stack trace when nothing is configured. */
function firstRunGuide(): string {
  const dirs = platformDirs();
  return `oz-worker needs an API key and a worker id before it can take tasks.

  Try everything locally first (no account needed):
    ${commandHint('local --demo')}

  Connect to Warp:
    WARP_API_KEY=<your key> ${commandHint('--worker-id <name> --backend direct')}

  Or put the settings in ${join(dirs.configDir, 'config.yaml')} (see --help).
`;
}

function nothingConfigured(flags: WorkerFlags, configFile: string | undefined): boolean {
  return !configFile && !flags.apiKey && !flags.apiKeyFile && !flags.workerId && !process.env.WARP_API_KEY && !process.env.WARP_API_KEY_FILE;
}

async function runWorkerCommand(flags: WorkerFlags): Promise<void> {
  let config;
  const configFile = flags.configFile ?? defaultConfigFile();
  if (nothingConfigured(flags, configFile)) {
    process.stderr.write(firstRunGuide());
    process.exit(EXIT_USAGE);
  }
  try {
    const file = configFile ? await loadConfigFile(configFile) : undefined;
    config = await resolveWorkerConfig(flags, file, process.env, readSecretFile);
    const keyFile = apiKeyFileSource(flags, file, process.env);
    const warning = keyFile === undefined ? undefined : keyFilePermissionWarning(keyFile, statSync(keyFile).mode);
    // Agents must not find the key in this process's environment (/proc/<pid>/environ).
    const concealed = concealApiKey(config.apiKey);
    const warnings = [warning, concealed, flags.apiKey ? COMMAND_LINE_KEY_WARNING : undefined].filter((text) => text !== undefined);
    if (warnings.length > 0) config.startupWarnings = [...(config.startupWarnings ?? []), ...warnings];
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, EXIT_USAGE);
    throw error;
  }
  const { runWorker } = await import('./run-worker.js');
  try {
    await runWorker(config);
  } catch (error) {
    fail(`could not start the worker: ${errorMessage(error)}`, 1);
  }
}

/** `service status` for the command `oz-worker service status`. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at?.parent; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/** Usage errors end with the help of the command that was being parsed, spelled so it runs. */
function pointErrorsAtOwnHelp(command: Command): void {
  command.configureOutput({
    outputError: (text, write) => {
      const path = commandPath(command);
      write(`oz-worker: ${text.trim()} (see ${commandHint(`${path ? `${path} ` : ''}--help`)})\n`);
    },
  });
  for (const sub of command.commands) pointErrorsAtOwnHelp(sub);
}

/** A word that names no sub-command of `parent`: the closest one, else where to look. */
function unknownCommand(word: string, parent: Command): never {
  const path = commandPath(parent);
  const within = (name: string): string => (path ? `${path} ${name}` : name);
  const names = parent.commands.map((c) => c.name()).filter((name) => name !== 'help');
  const suggestion = closestName(word, names);
  fail(`unknown command '${within(word)}' ${suggestion ? `(did you mean ${within(suggestion)}?)` : `(see ${commandHint(within('--help'))})`}`, EXIT_USAGE);
}

/**
 * `help a b …` as `a b … --help`: commander's own `help` reads only its first
 * word, so `help service install` would show the `service` overview.
 */
function helpAsFlag(program: Command, argv: string[]): string[] {
  const [first, ...rest] = argv.slice(2);
  if (first !== 'help') return argv;
  const words = rest.filter((word) => !word.startsWith('-'));
  if (words.length === 0) return argv;
  let at = program;
  for (const word of words) {
    const sub = at.commands.find((command) => command.name() === word || command.aliases().includes(word));
    if (!sub) unknownCommand(word, at);
    at = sub;
  }
  return [...argv.slice(0, 2), ...words, '--help'];
}

/**
 * An option's help, with its default also when the default is only described (`.default(undefined, 'oz on PATH')`:
 * the value stays unset so that the config file can still supply it), which commander alone leaves out.
 */
function optionDescription(option: Option): string {
  const text = new Help().optionDescription(option);
  return option.defaultValue === undefined && option.defaultValueDescription ? `${text} (default: ${option.defaultValueDescription})` : text;
}

export function buildProgram(): Command {
  const program = new Command('oz-worker')
    // Before any sub-command is made: they inherit it.
    .configureHelp({ optionDescription })
    .description('Self-hosted worker for Oz cloud agents: runs assigned tasks as local processes, Kubernetes Jobs, Docker containers or a dispatch command.')
    .usage('[options] [command]')
    .version(VERSION, '--version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help')
    .helpCommand('help [command]', 'show help for a command')
    .addHelpText('after', examples)
    .showSuggestionAfterError(true)
    .exitOverride()
    // Worker flags belong to the worker; sub-commands (task --api-key, local --backend) parse their own.
    .enablePositionalOptions()
    // The worker takes no words; one here is a mistyped command.
    .argument('[command]');
  addWorkerOptions(program);
  program.action((word: string | undefined, flags: WorkerFlags) => (word === undefined ? runWorkerCommand(flags) : unknownCommand(word, program)));
  registerServiceCommands(program);
  registerLocalCommands(program);
  registerAdminCommands(program);
  registerOperatorCommands(program);
  pointErrorsAtOwnHelp(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  let words: string[];
  try {
    words = [...argv.slice(0, 2), ...expandBooleanFlagValues(argv.slice(2))];
  } catch (error) {
    fail(errorMessage(error), EXIT_USAGE);
  }
  try {
    await program.parseAsync(helpAsFlag(program, words));
  } catch (error) {
    if (error instanceof CommanderError) {
      const benign = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help';
      process.exit(benign ? 0 : EXIT_USAGE);
    }
    fail(errorMessage(error), 1);
  }
}
