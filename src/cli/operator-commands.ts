// Operator tools: `plan` (what the worker would launch for an assignment) and
// `doctor` (checks config, server, key and backend). Both take the worker's own
// flags and config file, and load their implementation with a dynamic import
// so the worker's start-up does not pay for them.
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { ConfigError } from '../config/errors.js';
import { loadConfigFile } from '../config/load-file.js';
import { defaultConfigFile } from '../config/locations.js';
import { readSecretFile, resolveWorkerConfig, type WorkerFlags } from '../config/resolve.js';
import { describeWorkerSettings, type WorkerConfig } from '../config/worker-config.js';
import { addWorkerOptions } from './worker-options.js';
import { commandHint } from '../local/command-hint.js';
import { errorMessage } from '../errors/error-message.js';

const EXIT_USAGE = 2;

/** The worker's configuration from the same flags and file; `plan` needs no key or worker id. */
async function configFor(flags: WorkerFlags, optional: boolean): Promise<WorkerConfig> {
  const configFile = flags.configFile ?? defaultConfigFile();
  const file = configFile ? await loadConfigFile(configFile) : undefined;
  const env = optional ? { ...process.env, WARP_API_KEY: process.env.WARP_API_KEY || 'plan-needs-no-key' } : process.env;
  const filled = optional ? { ...flags, workerId: flags.workerId || file?.worker_id || 'plan-preview' } : flags;
  return resolveWorkerConfig(filled, file, env, readSecretFile);
}

function finish(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

function readInput(source: string): string {
  try {
    return readFileSync(source === '-' ? 0 : source, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the assignment from ${source === '-' ? 'stdin' : source}: ${errorMessage(error)}`);
  }
}

export function registerOperatorCommands(program: Command): void {
  addWorkerOptions(
    program
      .command('plan')
      .description('Show what the worker would launch for an assignment (argv, environment, workspace or image, Job manifest), without running it')
      .argument('<assignment>', 'assignment JSON file (the task_assignment data or the whole frame), or - for stdin')
      .addOption(new Option('--show-secrets', 'show environment values and the MCP config instead of [redacted]'))
      .addOption(new Option('--json', 'print JSON'))
      .addHelpText('after', () => `\nExample:\n  ${commandHint('plan --config-file config.yaml assignment.json')}\n`),
  ).action(async (source: string, flags: WorkerFlags & { showSecrets?: boolean; json?: boolean }) => {
    let config: WorkerConfig;
    let input: string;
    try {
      config = await configFor(flags, true);
      input = readInput(source);
    } catch (error) {
      process.stderr.write(`oz-worker: error: ${errorMessage(error)}\n`);
      return finish(EXIT_USAGE);
    }
    const { planAssignment } = await import('../tools/plan.js');
    const plan = await planAssignment(input, config, flags.showSecrets ?? false);
    process.stdout.write(`${flags.json ? JSON.stringify(plan.kind === 'run' ? { ...plan, text: undefined } : plan, null, 2) : plan.text}\n`);
    finish(plan.kind === 'run' ? 0 : 1);
  });

  addWorkerOptions(
    program
      .command('doctor')
      .description('Check the configuration, the dispatch server and API key, and the backend; one line per check with the fix for each failure')
      .addOption(new Option('--json', 'print JSON'))
      .addHelpText('after', () => `\nExample:\n  ${commandHint('doctor --config-file /etc/oz-worker/config.yaml')}\n`),
  ).action(async (flags: WorkerFlags & { json?: boolean }) => {
    const { formatChecks, runChecks } = await import('../tools/doctor.js');
    let checks;
    const configFix = `fix the flag or config file named above (see ${commandHint('doctor --help')})`;
    try {
      const config = await configFor(flags, false);
      checks = [
        { name: 'config', ok: true, detail: `valid (worker ${config.workerId}, backend ${config.backend}; ${describeWorkerSettings(config)})` },
        ...(config.startupWarnings ?? []).map((warning) => ({ name: 'config', ok: true, warning: true, detail: warning })),
        ...(await runChecks(config, process.env)),
      ];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      // Without a key (or worker id) everything but the server can still be checked.
      const partial = await configFor(flags, true).catch(() => undefined);
      const failed = { name: 'config', ok: false, detail: error.message, fix: configFix };
      checks = partial ? [failed, ...(await runChecks(partial, process.env, { skipServer: 'needs the configuration fixed above' }))] : [failed];
    }
    const ok = checks.every((check) => check.ok);
    process.stdout.write(`${flags.json ? JSON.stringify({ ok, checks }, null, 2) : formatChecks(checks)}\n`);
    finish(ok ? 0 : 1);
  });
}
