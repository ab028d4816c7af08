// The worker's flags as commander parses them: Go's names and help, repeatable
// lists kept whole, paths made absolute.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addWorkerOptions, expandBooleanFlagValues } from '../../src/cli/worker-options.js';
import { ConfigError } from '../../src/config/errors.js';
import { expandPath } from '../../src/config/paths.js';
import type { WorkerFlags } from '../../src/config/resolve.js';

function program(): Command {
  const command = new Command('oz-worker').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  return addWorkerOptions(command);
}

/** As the CLI parses: `--flag=BOOL` of a boolean flag expanded first. */
function parse(args: string[]): WorkerFlags {
  return program().parse(expandBooleanFlagValues(args), { from: 'user' }).opts<WorkerFlags>();
}

function parseError(args: string[]): string {
  try {
    parse(args);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected a usage error');
}

describe('worker flags', () => {
  it('parses every flag into WorkerFlags', () => {
    const flags = parse([
      '--config-file',
      '/etc/oz/config.yaml',
      '--backend',
      'direct',
      '--api-key',
      'key',
      '--api-key-file',
      '/run/key',
      '--worker-id',
      'w1',
      '--web-socket-url',
      'ws://127.0.0.1:1/ws',
      '--server-root-url',
      'http://127.0.0.1:2',
      '--log-level',
      'debug',
      '--target-dir',
      'relative/dir',
      '--no-cleanup',
      '-v',
      '/a:/b',
      '--volumes',
      '/c:/d:ro,z',
      '-e',
      'A=b,c=d',
      '--env',
      'B',
      '--max-concurrent-tasks',
      '-1',
      '--idle-on-complete',
      '10m',
      '--session-sharing-server-url',
      'ws://127.0.0.1:8081',
      '--shutdown-grace-period',
      '40s',
      '--device-owner-user-id',
      '42',
      '--device-team-id',
      '7',
      '--device-team-id',
      '9',
    ]);
    expect(flags).toEqual({
      configFile: '/etc/oz/config.yaml',
      backend: 'direct',
      apiKey: 'key',
      apiKeyFile: '/run/key',
      workerId: 'w1',
      webSocketUrl: 'ws://127.0.0.1:1/ws',
      serverRootUrl: 'http://127.0.0.1:2',
      logLevel: 'debug',
      // Not path-expanded, as in Go.
      targetDir: 'relative/dir',
      cleanup: false,
      volumes: ['/a:/b', '/c:/d:ro,z'],
      env: ['A=b,c=d', 'B'],
      // Validated later, with a clear message.
      maxConcurrentTasks: '-1',
      idleOnComplete: '10m',
      sessionSharingServerUrl: 'ws://127.0.0.1:8081',
      shutdownGracePeriod: '40s',
      deviceOwnerUserId: '42',
      deviceTeamId: ['7', '9'],
    } satisfies WorkerFlags);
  });

  it('leaves unset flags undefined, except cleanup and log level', () => {
    expect(parse([])).toEqual({ cleanup: true, logLevel: 'info' });
  });

  it('parses the later Go flags --one-shot and --collect-task-logs / --no-collect-task-logs', () => {
    expect(parse(['--one-shot', '--collect-task-logs'])).toMatchObject({ oneShot: true, collectTaskLogs: true });
    expect(parse(['--no-collect-task-logs']).collectTaskLogs).toBe(false);
    expect(parse([])).not.toHaveProperty('collectTaskLogs');
    expect(parse([])).not.toHaveProperty('oneShot');
  });

  it.each([
    [['--no-cleanup=false'], { cleanup: true }],
    [['--no-cleanup=true'], { cleanup: false }],
    [['--no-cleanup=0', '--one-shot=1'], { cleanup: true, oneShot: true }],
    [['--one-shot=false'], { cleanup: true }],
    [['--one-shot=TRUE'], { cleanup: true, oneShot: true }],
    [['--collect-task-logs=false'], { cleanup: true, collectTaskLogs: false }],
    [['--collect-task-logs=true'], { cleanup: true, collectTaskLogs: true }],
    [['--no-collect-task-logs=false'], { cleanup: true, collectTaskLogs: true }],
  ])('takes a boolean flag with a value as the Go worker does: %j', (args, expected) => {
    expect(parse(args)).toEqual({ logLevel: 'info', ...expected });
  });

  it('never takes the word after a boolean flag as its value', () => {
    const command = addWorkerOptions(new Command('plan').exitOverride().argument('<assignment>'));
    command.action(() => {});
    command.parse(expandBooleanFlagValues(['--no-cleanup', 'assignment.json', '--one-shot']), { from: 'user' });
    expect(command.args).toEqual(['assignment.json']);
    expect(command.opts()).toMatchObject({ cleanup: false, oneShot: true });
  });

  it('rewrites only boolean flags, and nothing after --', () => {
    expect(expandBooleanFlagValues(['--env=A=true', '--backend=direct', '--', '--one-shot=false'])).toEqual([
      '--env=A=true',
      '--backend=direct',
      '--',
      '--one-shot=false',
    ]);
  });

  it('refuses a boolean flag with a value that is not a boolean', () => {
    expect(() => expandBooleanFlagValues(['--one-shot=maybe'])).toThrow(new ConfigError('invalid --one-shot=maybe: use --one-shot alone, or =true or =false'));
  });

  it('accepts --websocket-url as another name for --web-socket-url', () => {
    expect(parse(['--websocket-url', 'ws://127.0.0.1:3/ws']).webSocketUrl).toBe('ws://127.0.0.1:3/ws');
  });

  it('accepts the attached forms -eKEY=V and --env=KEY=V', () => {
    expect(parse(['-eA=1', '--env=B=2,3']).env).toEqual(['A=1', 'B=2,3']);
  });

  it('makes --config-file and --api-key-file absolute', () => {
    const flags = parse(['--config-file', 'conf/oz.yaml', '--api-key-file', '~/oz.key']);
    expect(flags.configFile).toBe(resolve('conf/oz.yaml'));
    expect(flags.apiKeyFile).toBe(join(homedir(), 'oz.key'));
  });

  it.each([
    [['--log-level', 'trace'], /--log-level.*'trace' is invalid/],
    [['--backend', 'podman'], /'podman' is invalid. Use one of docker, direct, kubernetes, command/],
    [['--bogus'], /unknown option '--bogus'/],
  ])('refuses %j', (args, pattern) => {
    expect(parseError(args)).toMatch(pattern);
  });

  it('shows the Go flags with their help texts, the dispatch URLs too, and hides the session-sharing one', () => {
    // Commander wraps long lines; compare with whitespace collapsed.
    const help = program().helpInformation().replace(/\s+/g, ' ');
    for (const text of [
      '--config-file <path>',
      'Path to YAML config file',
      '--backend <type>',
      'Backend type (docker, direct, kubernetes, or command)',
      '--api-key <key>',
      'API key for authentication',
      '--worker-id <id>',
      'Worker host identifier (required via flag or config file)',
      '--log-level <level>',
      'Log level (debug, info, warn, error)',
      '--target-dir <dir>',
      '--no-cleanup',
      'Do not remove containers after execution (for debugging)',
      '-v, --volumes <spec>',
      '-e, --env <entry>',
      '--max-concurrent-tasks <n>',
      'Maximum number of tasks to run concurrently (0 for unlimited)',
      '--idle-on-complete <duration>',
      '--shutdown-grace-period <duration>',
      '--device-owner-user-id <id>',
      '--device-team-id <id>',
      '--one-shot',
      '--collect-task-logs',
      '--no-collect-task-logs',
    ]) {
      expect(help).toContain(text);
    }
    expect(help).toContain('--websocket-url, --web-socket-url <url>');
    expect(help).toContain('--server-root-url <url>');
    expect(help).not.toContain('--session-sharing-server-url');
  });
});

describe('expandPath', () => {
  const where = { home: '/home/me', base: '/work/dir' };
  it.each([
    ['~/oz.yaml', '/home/me/oz.yaml'],
    ['~', '/home/me'],
    ['conf/oz.yaml', '/work/dir/conf/oz.yaml'],
    ['./oz.yaml', '/work/dir/oz.yaml'],
    ['../oz.yaml', '/work/oz.yaml'],
    ['/etc/oz.yaml', '/etc/oz.yaml'],
    ['~user/oz.yaml', '/work/dir/~user/oz.yaml'],
    ['', ''],
  ])('%j becomes %j', (path, expected) => {
    expect(expandPath(path, where)).toBe(expected);
  });
});
