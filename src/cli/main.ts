// The `oz-worker` command line. With no sub-command it runs the worker (the Go
// worker's flags, unchanged); sub-commands add the local dispatch server and tools.
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load-file.js';
import { defaultConfigFile, platformDirs } from '../config/locations.js';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { apiKeyFileSource, keyFilePermissionWarning, readSecretFile, resolveWorkerConfig, type WorkerFlags } from '../config/resolve.js';
import { registerServiceCommands } from '../service/service-command.js';
import { registerLocalCommands } from './local-commands.js';
import { registerOperatorCommands } from './operator-commands.js';
import { addWorkerOptions } from './worker-options.js';
import { commandHint } from '../local/command-hint.js';

import { VERSION } from '../version.js';

export { VERSION };

const EXAMPLES = `
Examples:
  # Run tasks as local processes, connected to Warp
  WARP_API_KEY=... oz-worker --worker-id my-laptop --backend direct

  # Use a config file (same keys as oz-agent-worker)
  oz-worker --config-file /etc/oz-worker/config.yaml

  # Pass environment to every task
  oz-worker --worker-id w1 --backend direct -e GITHUB_TOKEN -e LOG_LEVEL=debug
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
    if (warning) config.startupWarnings = [...(config.startupWarnings ?? []), warning];
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, EXIT_USAGE);
    throw error;
  }
  const { runWorker } = await import('./run-worker.js');
  try {
    await runWorker(config);
  } catch (error) {
    fail(`could not start the worker: ${error instanceof Error ? error.message : String(error)}`, 1);
  }
}

export function buildProgram(): Command {
  const program = new Command('oz-worker')
    .description('Self-hosted worker for Oz cloud agents: runs assigned tasks as local processes, Kubernetes Jobs, Docker containers or a dispatch command.')
    .version(VERSION, '--version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help')
    .addHelpText('after', EXAMPLES)
    .showSuggestionAfterError(true)
    .configureOutput({
      outputError: (text, write) => write(`oz-worker: ${text.trim().replace(/^error: /, 'error: ')} (see oz-worker --help)\n`),
    })
    .exitOverride()
    // Worker flags belong to the worker; sub-commands (task --api-key, local --backend) parse their own.
    .enablePositionalOptions();
  addWorkerOptions(program);
  program.action((flags: WorkerFlags) => runWorkerCommand(flags));
  registerServiceCommands(program);
  registerLocalCommands(program);
  registerOperatorCommands(program);
  return program;
}

async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      const benign = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help';
      process.exit(benign ? 0 : EXIT_USAGE);
    }
    fail(error instanceof Error ? error.message : String(error), 1);
  }
}

await main(process.argv);
