// A real systemd, booted as PID 1 in a container (systemd-nspawn) from the
// Debian root filesystem test/infra/systemd/up.sh builds, sharing this
// machine's network (so a server on 127.0.0.1 here is reachable there). Each
// boot gets a fresh root (--volatile=overlay: writes go to a tmpfs and vanish
// at shutdown); commands run inside through nsenter.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const CACHE = process.env.OZ_TEST_CACHE ?? '/root/.cache/oz-worker-test';
export const SYSTEMD_ENV_FILE = join(CACHE, 'systemd/env');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The root filesystem, or why there is none (one line). */
export function findSystemdRootfs(): { rootfs: string } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'booting systemd in a container (systemd-nspawn) needs root' };
  if (!existsSync(SYSTEMD_ENV_FILE)) return { skip: `no ${SYSTEMD_ENV_FILE}; prepare it with: bash test/infra/systemd/up.sh` };
  const env: Record<string, string> = {};
  for (const line of readFileSync(SYSTEMD_ENV_FILE, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1).replace(/\\(.)/g, '$1');
  }
  if (env.OZ_SYSTEMD_UNAVAILABLE) return { skip: env.OZ_SYSTEMD_UNAVAILABLE };
  const rootfs = env.OZ_SYSTEMD_ROOTFS ?? '';
  if (!existsSync(join(rootfs, 'lib/systemd/systemd'))) return { skip: `${rootfs} holds no systemd; rebuild it with: bash test/infra/systemd/up.sh` };
  if (spawnSync('systemd-nspawn', ['--version']).status !== 0)
    return { skip: 'systemd-nspawn is not installed (Debian: systemd-container); run test/infra/systemd/up.sh' };
  return { rootfs };
}

/** A command with its output, whatever its exit (a timeout kills it). */
export function runCommand(command: string, args: string[], options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${error.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

const comm = (pid: number): string | undefined => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
};

export class BootedSystem {
  private output = '';

  private constructor(
    private readonly nspawn: ChildProcess,
    /** PID 1 of the container, as this machine numbers it. */
    readonly leader: number,
  ) {}

  /**
   * Boots the root filesystem with systemd as PID 1; `binds` are [host path, container path]
   * pairs mounted read-only. Throws, with the container's last output, when it does not
   * reach `running` (or `degraded`) within the time given.
   */
  static async boot(rootfs: string, binds: Array<[string, string]>, timeoutMs = 60_000): Promise<BootedSystem> {
    const machine = `oz-test-${process.pid}`;
    const nspawn = spawn(
      'systemd-nspawn',
      [
        '--directory',
        rootfs,
        '--machine',
        machine,
        // No machined or host systemd needed: the container stays in this process's cgroup.
        '--register=no',
        '--keep-unit',
        '--volatile=overlay',
        '--console=pipe',
        ...binds.map(([from, to]) => `--bind-ro=${from}:${to}`),
        '--boot',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    nspawn.stdout!.on('data', keep);
    nspawn.stderr!.on('data', keep);
    const deadline = Date.now() + timeoutMs;
    const fail = (why: string): never => {
      nspawn.kill('SIGKILL');
      throw new Error(`${why}${output.trim() ? `; systemd-nspawn said: ${output.trim().split('\n').slice(-5).join(' | ')}` : ''}`);
    };
    let leader: number | undefined;
    while (leader === undefined) {
      if (nspawn.exitCode !== null || nspawn.signalCode !== null)
        fail(`systemd-nspawn exited (${nspawn.exitCode ?? nspawn.signalCode}) before systemd started`);
      if (Date.now() > deadline) fail('systemd did not start in the container');
      leader = childrenOf(nspawn.pid!).find((pid) => comm(pid) === 'systemd');
      if (leader === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    const system = new BootedSystem(nspawn, leader);
    // A test process that ends without shutdown() leaves no container behind: killing PID 1 ends its namespace.
    const leaderPid = leader;
    process.once('exit', () => {
      if (nspawn.exitCode !== null || nspawn.signalCode !== null) return;
      try {
        process.kill(leaderPid, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    system.output = output;
    nspawn.stdout!.on('data', (chunk: Buffer) => {
      system.output = (system.output + chunk.toString()).slice(-20_000);
    });
    // systemctl cannot connect until systemd has made its private socket; --wait then waits for the boot.
    let state = await system.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1_000, deadline - Date.now()) });
    while (state.stdout.trim() === '' && /Failed to connect/.test(state.stderr) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      state = await system.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1_000, deadline - Date.now()) });
    }
    if (!/^(running|degraded)$/m.test(state.stdout)) {
      await system.shutdown();
      fail(`systemd in the container did not finish booting (is-system-running: ${state.stdout.trim() || state.stderr.trim() || 'no answer'})`);
    }
    return system;
  }

  /**
   * Runs a command inside the container (all its namespaces), as root. Asynchronous: the
   * test process may be serving the worker in the container meanwhile.
   */
  exec(args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
    return runCommand('nsenter', ['--target', String(this.leader), '--all', '--', ...args], options);
  }

  /** `sh -c script` inside; throws with its output when it fails. */
  async sh(script: string, input?: string): Promise<string> {
    const run = await this.exec(['sh', '-c', script], input === undefined ? {} : { input });
    if (run.code !== 0) throw new Error(`in the container, \`${script}\` failed (${run.code}): ${run.stdout}${run.stderr}`);
    return run.stdout;
  }

  /** Powers the container off (systemd-nspawn turns SIGTERM into a clean shutdown), then makes sure. */
  async shutdown(): Promise<void> {
    if (this.nspawn.exitCode !== null || this.nspawn.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.nspawn.once('exit', () => resolve()));
    this.nspawn.kill('SIGTERM');
    const timer = setTimeout(() => this.nspawn.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }
}
