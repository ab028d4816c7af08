// The image built from the project's Dockerfile (unchanged, FROM a local
// node:24-slim stand-in; see test/infra/docker/images.sh), run on the private
// test engine. Skips, saying why, when the engine or the image is not there.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalServer, type LocalServerHarness } from '../support/local-server.js';
import { findRealDocker } from '../support/real-docker.js';
import { FAKE_OZ, REPO_ROOT, tempDir } from '../support/worker-process.js';

const found = await findRealDocker();
const docker = 'skip' in found ? undefined : found;
const skip = 'skip' in found ? found.skip : found.workerImage ? undefined : (found.workerImageProblem ?? 'up.sh did not build the worker image');
if (skip) console.log(`real Docker image suite skipped: ${skip}`);
const IMAGE = docker?.workerImage ?? '';
const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The docker CLI on the test engine; `env` reaches the CLI process only (for `-e NAME` without a value). */
function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/docker',
      ['-H', docker!.dockerHost, ...args],
      { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env }, timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe.skipIf(skip !== undefined)('the worker image on a real engine', () => {
  it('prints its version', async () => {
    const run = await cli(['run', '--rm', '--network', 'none', IMAGE, '--version']);
    expect(run).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
  }, 90_000);

  it('runs as uid 10001, not root', async () => {
    const user = await cli(['image', 'inspect', '-f', '{{.Config.User}}', IMAGE]);
    expect(user.stdout.trim()).toBe('10001');
    const id = await cli(['run', '--rm', '--network', 'none', '--entrypoint', '/bin/sh', IMAGE, '-c', 'id -u; id -g']);
    expect(id.stdout.split('\n')[0]).toBe('10001');
    expect(id.stdout.split('\n')[1]).not.toBe('0');
  }, 90_000);

  describe('the containerised worker (host network, read-only root) against oz-worker server on the host', () => {
    let s: LocalServerHarness;
    let dir: { path: string; cleanup: () => void };
    const name = `oz-image-test-${randomBytes(4).toString('hex')}`;
    let logs = '';
    let client: ReturnType<LocalServerHarness['as']>;
    beforeAll(async () => {
      s = await startLocalServer();
      dir = tempDir('image-worker');
      const config = join(dir.path, 'config.yaml');
      writeFileSync(
        config,
        ['worker_id: image-worker', 'backend:', '  direct:', '    oz_path: /opt/fake-oz/fake-oz.mjs', '    workspace_root: /tmp/oz-workspaces'].join('\n'),
      );
      // Readable by the image's uid 10001.
      chmodSync(dir.path, 0o755);
      chmodSync(config, 0o644);
      const user = await s.createUser('image-user');
      const run = await cli(
        [
          'run',
          '-d',
          '--name',
          name,
          '--network',
          'host',
          '--read-only',
          '--tmpfs',
          '/tmp:rw,mode=1777',
          '-v',
          `${dir.path}:/etc/oz-worker:ro`,
          '-v',
          `${FAKE_OZ}:/opt/fake-oz/fake-oz.mjs:ro`,
          // The key reaches the container from the CLI's environment, never through an argv.
          '-e',
          'WARP_API_KEY',
          IMAGE,
          '--config-file',
          '/etc/oz-worker/config.yaml',
          '--web-socket-url',
          s.server.webSocketUrl,
          '--server-root-url',
          s.server.httpUrl,
          // Every agent runs a while, so the drain below finds one running.
          '-e',
          'FAKE_OZ_SLEEP_MS=8000',
        ],
        { WARP_API_KEY: user.key },
      );
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      client = s.as(user.key);
      const task = await client.submitTask({ prompt: 'inside the image' });
      const done = await s.waitForTask(client, task.id, ['completed', 'failed'], 60_000).catch(async (error: unknown) => {
        throw new Error(
          `${(error as Error).message}; container logs:\n${((await cli(['logs', name])).stdout + (await cli(['logs', name])).stderr).slice(-3000)}`,
        );
      });
      expect(done.state).toBe('completed');
    }, 120_000);
    afterAll(async () => {
      await cli(['rm', '-f', name]);
      await s?.close();
      dir?.cleanup();
    });

    it('has tini as PID 1, running node on the worker', async () => {
      const cmdline = await cli(['exec', name, 'cat', '/proc/1/cmdline']);
      expect(cmdline.stdout.split('\0').slice(0, 4)).toEqual(['/usr/bin/tini', '--', 'node', '/app/bin/oz-worker.js']);
    });

    it('can write only to the documented paths', async () => {
      const probe = await cli([
        'exec',
        name,
        '/bin/sh',
        '-c',
        'for d in /app /home/oz /var/lib /etc /tmp; do if touch "$d/.w" 2>/dev/null; then echo "$d writable"; rm -f "$d/.w"; fi; done',
      ]);
      expect(probe.stdout.trim().split('\n')).toEqual(['/tmp writable']);
    });

    it('drains on SIGTERM through tini: the running task is reported, then the worker exits 0', async () => {
      const task = await client.submitTask({ prompt: 'interrupted by the drain' });
      await s.waitForTask(client, task.id, ['running'], 30_000);
      const stop = await cli(['stop', '-t', '30', name], {}, 60_000);
      expect(stop.code).toBe(0);
      const state = await cli(['inspect', '-f', '{{.State.ExitCode}} {{.State.OOMKilled}}', name]);
      expect(state.stdout.trim()).toBe('0 false');
      logs = (await cli(['logs', name])).stdout + (await cli(['logs', name])).stderr;
      expect(logs).toContain('Shutting down: no new tasks are accepted');
      expect(logs).toContain('Worker shutdown complete');
      // The task's outcome reached the server before the worker went away.
      const after = await client.task(task.id);
      expect(after.state).not.toBe('running');
      expect(after).toMatchObject({ state: 'failed', failure_reason: 'graceful_shutdown' });
    }, 90_000);
  });
});
