// `oz-worker admin` against a bare `oz-worker server`, through the real bin:
// everything a server needs before it runs a task, without curl.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RunningCli, runCli } from '../support/cli.js';
import { BIN, FAKE_OZ, REPO_ROOT, tempDir } from '../support/worker-process.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function bareServer(): Promise<{ stateDir: string; url: string; webSocketUrl: string }> {
  const dir = tempDir('admin');
  cleanups.push(dir.cleanup);
  const stateDir = `${dir.path}/state`;
  const server = new RunningCli([process.execPath, BIN, 'server', '--listen', '127.0.0.1:0', '--state-dir', stateDir]);
  cleanups.push(async () => {
    server.interrupt();
    await server.exit();
  });
  const [, url, webSocketUrl] = await server.waitFor(/listening on (http:\/\/\S+)\n\s+workers connect with:\s+--web-socket-url (\S+)/);
  await server.waitFor(/administer with:\s+npx oz-worker admin user list --state-dir \S+/);
  return { stateDir, url: url!, webSocketUrl: webSocketUrl! };
}

// Each case runs a dozen CLI processes one after another: on a loaded machine that takes well over 30 s.
describe('oz-worker admin', { timeout: 120_000 }, () => {
  it('sets up a user, a team, a default agent and keys on a bare server, and a task runs with them', async () => {
    const { stateDir, url, webSocketUrl } = await bareServer();
    const admin = async (...args: string[]): Promise<string> => {
      const result = await runCli(['admin', ...args, '--state-dir', stateDir]);
      expect(result.code, `admin ${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(result.stderr).toBe('');
      return result.stdout;
    };
    expect(await admin('user', 'create', 'alice')).toBe('created user 1 "alice"\n');
    expect(await admin('team', 'create', 'ops')).toBe('created team 1 "ops"\n');
    expect(await admin('member', 'add', '1', '1')).toBe('user 1 is a member of team 1 "ops" (members: 1)\n');
    expect(await admin('default-agent', 'set', '1', '{"model_id":"auto"}')).toBe('team 1 "ops" default agent: {"model_id":"auto"}\n');
    const teamKey = /^created key \d+ for team 1: (\S+)\n\(shown once/.exec(await admin('key', 'create', '--team', '1', '--name', 'fleet'))![1]!;
    const userKey = /^created key \d+ for user 1: (\S+)\n/.exec(await admin('key', 'create', '--user', '1'))![1]!;
    expect(await admin('team', 'list')).toMatch(/^ID +NAME +MEMBERS +DEFAULT AGENT\n1 +ops +1 +\{"model_id":"auto"\}\n$/);
    expect(await admin('member', 'list', '1')).toMatch(/^TEAM +USER\n1 \(ops\) +1\n$/);
    const keys = await admin('key', 'list');
    expect(keys).toMatch(/^ID +PREFIX +KIND +OWNER +STATE +NAME\n/);
    expect(keys).toMatch(/\n2 +ozl_\S+ +team +team 1 +active +fleet\n/);
    expect(keys).not.toContain(teamKey);
    expect(JSON.parse(await admin('user', 'list', '--json'))).toEqual({ users: [expect.objectContaining({ id: 1, name: 'alice' })] });

    // A fleet worker with the team key, connected with the URLs the server printed.
    const dir = tempDir('admin-worker');
    cleanups.push(dir.cleanup);
    const config = `${dir.path}/worker.yaml`;
    await import('node:fs/promises').then((fs) => fs.writeFile(config, `backend:\n  direct:\n    oz_path: ${FAKE_OZ}\n    workspace_root: ${dir.path}/ws\n`));
    const worker = new RunningCli(
      [process.execPath, BIN, '--worker-id', 'fleet-1', '--config-file', config, '--web-socket-url', webSocketUrl, '--server-root-url', url],
      {
        env: { WARP_API_KEY: teamKey },
      },
    );
    cleanups.push(async () => {
      worker.interrupt();
      await worker.exit();
    });
    await worker.waitFor(/Connected to dispatch server/);
    // VERSION: what the worker announced on connecting (X-Warp-Worker-Version), this package's version.
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const escaped = version.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    expect(await admin('worker', 'list')).toMatch(new RegExp(`^WORKER +VERSION +KEY OF +ACTIVE TASKS +DRAINING\\nfleet-1 +${escaped} +team 1 +0 +no\\n$`));

    // The team's default agent applies: no --agent-config needed.
    const task = await runCli(['task', 'submit', 'ship it', '--team', '1', '--watch', '--server', url, '--api-key', userKey]);
    expect(task.code, task.stdout + task.stderr).toBe(0);
    expect(task.stdout).toMatch(/task completed/);

    // A revoked key stops working at once.
    await admin('key', 'revoke', '3');
    const refused = await runCli(['task', 'list', '--server', url, '--api-key', userKey]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/does not accept the API key given with --api-key/);
  });

  it('removes what has no task history, refuses what has, and archives pins', async () => {
    const { stateDir, url } = await bareServer();
    const admin = (...args: string[]) => runCli(['admin', ...args, '--state-dir', stateDir]);
    await admin('user', 'create', 'bob');
    await admin('team', 'create', 'lab');
    await admin('member', 'add', '1', '1');
    await admin('default-agent', 'set', '1', '{"model_id":"auto"}');
    expect((await admin('device', 'create', '1', 'laptop', '--id', 'bob-mac')).stdout).toBe('registered device bob-mac "laptop" for user 1\n');
    expect((await admin('pin', 'create', 'bob-mac', '1')).stdout).toBe("pin 1: team 1's tasks with --device bob-mac go to that device\n");
    expect((await admin('pin', 'list')).stdout).toMatch(/^ID +DEVICE +TEAM +STATE\n1 +bob-mac +1 +active\n$/);
    expect((await admin('pin', 'archive', '1')).stdout).toBe('archived pin 1\n');
    expect((await admin('pin', 'list')).stdout).toMatch(/\n1 +bob-mac +1 +archived\n$/);

    const stillHasDevice = await admin('user', 'remove', '1');
    expect(stillHasDevice.code).toBe(1);
    expect(stillHasDevice.stderr).toBe('oz-worker: error: user 1 still has devices; remove them first\n');
    expect((await admin('device', 'remove', 'bob-mac')).stdout).toBe('removed device bob-mac (its pins went with it)\n');
    expect((await admin('default-agent', 'remove', '1')).stdout).toBe('team 1 "lab" has no default agent now; its tasks need --agent-config\n');
    expect((await admin('default-agent', 'list')).stdout).toMatch(/^TEAM +DEFAULT AGENT\n1 \(lab\) +-\n$/);
    expect((await admin('member', 'remove', '1', '1')).stdout).toBe('user 1 is no longer a member of team 1 "lab"\n');
    expect((await admin('user', 'remove', '1')).stdout).toBe('removed user 1 (its keys and memberships went with it)\n');
    expect((await admin('user', 'list')).stdout).toBe('no users\n');

    // A team that owns a task stays.
    const { stdout } = await admin('key', 'create', '--team', '1');
    const teamKey = /: (\S+)\n/.exec(stdout)![1]!;
    const submitted = await runCli(['task', 'submit', 'x', '--agent-config', '{}', '--server', url, '--api-key', teamKey]);
    expect(submitted.code, submitted.stderr).toBe(0);
    const refused = await admin('team', 'remove', '1');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('oz-worker: error: team 1 owns tasks, so it stays; revoke its keys and remove its members instead\n');

    const unknown = await admin('member', 'add', '1', '99');
    expect(unknown.stderr).toBe('oz-worker: error: user 99 does not exist: `npx oz-worker admin user list` shows the users\n');
    const badId = await admin('user', 'remove', 'bob');
    expect(badId.code).toBe(2);
    expect(badId.stderr).toMatch(/^oz-worker: error: invalid user id "bob": use a numeric id\n$/);
  });

  it('says where it looked when no server has used the state directory, and refuses a key that is not the admin key', async () => {
    const dir = tempDir('admin-none');
    cleanups.push(dir.cleanup);
    const none = await runCli(['admin', 'user', 'list', '--state-dir', dir.path]);
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(
      `oz-worker: error: no server has run with the state directory ${dir.path}: start one with \`npx oz-worker server\`, pass the --state-dir it runs with, or pass --server <url> and --api-key <admin key>\n`,
    );

    const { stateDir, url } = await bareServer();
    // `task` finds a bare server too, and says which key it needs.
    const noKey = await runCli(['task', 'list', '--state-dir', stateDir]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toBe(
      `oz-worker: error: no API key for the server at ${url}: pass --api-key <key> or set OZ_API_KEY (make a user key with \`npx oz-worker admin key create --user <id>\`)\n`,
    );
    await runCli(['admin', 'user', 'create', 'carol', '--state-dir', stateDir]);
    const key = /: (\S+)\n/.exec((await runCli(['admin', 'key', 'create', '--user', '1', '--state-dir', stateDir])).stdout)![1]!;
    const notAdmin = await runCli(['admin', 'user', 'list', '--state-dir', stateDir], { env: { OZ_ADMIN_KEY: key } });
    expect(notAdmin.code).toBe(1);
    expect(notAdmin.stderr).toMatch(/^oz-worker: error: this needs the server's admin key, not the key from \$OZ_ADMIN_KEY: leave --api-key out/);
  });
});
