// The command line as a user meets it: bad flags and bad config fail fast with
// one line that names the problem and the fix, before any connection is made.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeDispatchServer } from '../support/fake-dispatch-server.js';
import { BIN, REPO_ROOT, startWorker, tempDir } from '../support/worker-process.js';

let server: FakeDispatchServer;
const dir = tempDir('cli');
beforeAll(async () => {
  server = await FakeDispatchServer.start();
});
afterAll(async () => {
  await server.close();
  dir.cleanup();
});

async function run(args: string[], env: Record<string, string> = {}) {
  const worker = startWorker({ args: ['--web-socket-url', server.url, ...args], env });
  const { code } = await worker.exited;
  return { code, output: worker.output };
}

function configFile(name: string, text: string): string {
  const path = join(dir.path, name);
  writeFileSync(path, text);
  return path;
}

describe('command line', () => {
  it('prints the version', async () => {
    const { code, output } = await run(['--version']);
    expect(code).toBe(0);
    expect(output.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('says which Node.js it needs, and the command that runs it anyway, when started on one that is too old', async () => {
    // Pretend to be Node 20 (the bundle would otherwise fail to link with an unhelpful error);
    // test/integration/package.test.ts does the same on a real old Node.
    const preload = configFile('old-node.cjs', "Object.defineProperty(process.versions, 'node', { value: '20.11.1' });\n");
    const { code, output } = await run(['--worker-id', 'w'], { NODE_OPTIONS: `--require ${preload}` });
    expect(code).toBe(2);
    const lines = output.trim().split('\n');
    expect(lines[0]).toBe(
      'oz-worker: error: Node.js 20.11.1 is too old; oz-worker needs Node.js 22.12 or newer (24 LTS recommended). Run it with a newer Node.js anyway:',
    );
    expect(lines[1]).toMatch(/^ {2}npx (--prefix \S+ )?oz-worker --web-socket-url ws:\S+ --worker-id w$/);
    const version = await run(['--version'], { NODE_OPTIONS: `--require ${preload}` });
    expect(version.code).toBe(0);
    expect(version.output.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('shows examples in --help', async () => {
    const { code, output } = await run(['--help']);
    expect(code).toBe(0);
    expect(output).toContain('Examples:');
    expect(output).toContain('--max-concurrent-tasks');
  });

  it.each([
    ['an unknown flag', ['--worker-id', 'w', '--bogus'], { WARP_API_KEY: 'k' }, /unknown option '--bogus'/],
    ['a missing API key', ['--worker-id', 'w'], {}, /API key/],
    ['an empty API key', ['--worker-id', 'w'], { WARP_API_KEY: '' }, /API key/],
    ['a reserved worker id', ['--worker-id', 'warp-1'], { WARP_API_KEY: 'k' }, /reserved/],
    ['a missing worker id', [], { WARP_API_KEY: 'k' }, /worker-id is required/],
    [
      'a boolean flag with a value that is not a boolean',
      ['--worker-id', 'w', '--one-shot=maybe'],
      { WARP_API_KEY: 'k' },
      /invalid --one-shot=maybe: use --one-shot alone, or =true or =false/,
    ],
    ['a bad OZ_COLLECT_TASK_LOGS', ['--worker-id', 'w'], { WARP_API_KEY: 'k', OZ_COLLECT_TASK_LOGS: 'sometimes' }, /invalid OZ_COLLECT_TASK_LOGS "sometimes"/],
    ['a non-integer concurrency', ['--worker-id', 'w', '--max-concurrent-tasks', 'two'], { WARP_API_KEY: 'k' }, /max-concurrent-tasks/],
    ['an unknown backend', ['--worker-id', 'w', '--backend', 'podman'], { WARP_API_KEY: 'k' }, /podman/],
  ])('rejects %s with exit code 2 and one clear line', async (_name, args, env, pattern) => {
    const before = server.handshakes.length;
    const { code, output } = await run(args, env);
    expect(code).toBe(2);
    const lines = output.trim().split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^oz-worker: error: /);
    expect(lines[0]).toMatch(pattern);
    expect(server.handshakes.length).toBe(before);
  });

  it('guides a first-time user who configured nothing', async () => {
    const home = join(dir.path, 'empty-home');
    const worker = startWorker({ args: [], env: { HOME: home, XDG_CONFIG_HOME: join(home, '.config') } });
    const { code } = await worker.exited;
    expect(code).toBe(2);
    expect(worker.output).toContain('npx oz-worker local --demo');
    expect(worker.output).toContain('WARP_API_KEY=');
    expect(worker.output).not.toMatch(/\bat .*\.js:\d+/);
  });

  it('names the unknown config key and its line', async () => {
    const path = configFile('unknown.yaml', 'worker_id: w\nbackend:\n  kubernetes:\n    namespace: x\n    image_pull_secret: s\n');
    const { code, output } = await run(['--config-file', path], { WARP_API_KEY: 'k' });
    expect(code).toBe(2);
    expect(output).toMatch(/line 5/);
    expect(output).toMatch(/image_pull_secret/);
  });

  it('selects the direct backend from an empty direct: block', async () => {
    const path = configFile('empty-direct.yaml', 'worker_id: w\nbackend:\n  direct:\n');
    const worker = startWorker({ args: ['--config-file', path, '--web-socket-url', server.url], env: { WARP_API_KEY: 'k', PATH: '/nonexistent' } });
    const { code } = await worker.exited;
    // No `oz` on this PATH: the direct backend (not docker) explains what to do.
    expect(code).toBe(1);
    expect(worker.output).toMatch(/oz CLI not found/);
  });

  it('says so in one line when the selected backend cannot start', async () => {
    const { code, output } = await run(['--worker-id', 'w', '--backend', 'docker'], { WARP_API_KEY: 'k', DOCKER_HOST: 'unix:///nonexistent/docker.sock' });
    expect(code).toBe(1);
    expect(output).toMatch(/^oz-worker: error: could not start the worker: .*Docker isn't running/m);
  });
});

describe('commands and help', () => {
  const cli = (args: string[]) => {
    const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: REPO_ROOT, env: { ...process.env, npm_command: 'exec' } });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  it.each([
    ['locl', "oz-worker: error: unknown command 'locl' (did you mean local?)"],
    ['sever', "oz-worker: error: unknown command 'sever' (did you mean server?)"],
    ['doctr', "oz-worker: error: unknown command 'doctr' (did you mean doctor?)"],
    ['frobnicate', "oz-worker: error: unknown command 'frobnicate' (see npx oz-worker --help)"],
  ])('a mistyped command %s says what it knows', (word, line) => {
    const { code, stderr } = cli([word]);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(line);
  });

  it('oz-worker help <command> shows that command', () => {
    const { code, stdout } = cli(['help', 'local']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: oz-worker local \[options\]/);
    expect(cli(['help', 'lcal']).stderr.trim()).toBe("oz-worker: error: unknown command 'lcal' (did you mean local?)");
  });

  it.each([
    [['service', 'install'], /^Usage: oz-worker service install \[options\]/],
    [['task', 'submit'], /^Usage: oz-worker task submit \[options\] <prompt\.\.\.>/],
    [['admin', 'key', 'create'], /^Usage: oz-worker admin key create \[options\]/],
  ])('oz-worker help %j shows that sub-command, not its group', (words, usage) => {
    const { code, stdout } = cli(['help', ...words]);
    expect(code).toBe(0);
    expect(stdout).toMatch(usage);
    expect(stdout).toBe(cli([...words, '--help']).stdout);
  });

  it('oz-worker help <group> <mistyped> names the closest sub-command of that group', () => {
    const { code, stderr } = cli(['help', 'task', 'sbmit']);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe("oz-worker: error: unknown command 'task sbmit' (did you mean task submit?)");
  });

  it('local --help describes its two workers and two demo tasks', () => {
    const help = cli(['local', '--help']).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('two workers');
    expect(help).toMatch(/--demo Submit two demo tasks, one owned by the demo user and one by its team/);
    expect(help).not.toMatch(/\ba worker connected\b|\ba demo task\b|the demo task\b/);
  });

  it.each([
    [['local', '--bogus'], "oz-worker: error: unknown option '--bogus' (see npx oz-worker local --help)"],
    [['task', 'submit', '--bogs', 'x'], "oz-worker: error: unknown option '--bogs' (see npx oz-worker task submit --help)"],
    [['service', 'status', '--user', 'x'], "oz-worker: error: unknown option '--user' (see npx oz-worker service status --help)"],
    [['--bogus'], "oz-worker: error: unknown option '--bogus' (see npx oz-worker --help)"],
  ])('an unknown option points to the help of its own command: %j', (args, line) => {
    const { code, stderr } = cli(args);
    expect(code).toBe(2);
    expect(stderr.trim()).toBe(line);
  });

  it('--help lists the dispatch URLs and what --no-cleanup keeps for every backend', () => {
    const help = cli(['--help']).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('--web-socket-url <url>');
    expect(help).toContain('--server-root-url <url>');
    expect(help).toMatch(/--no-cleanup .*\(direct\).*\(docker\).*\(kubernetes\).*command backend/);
  });
});
