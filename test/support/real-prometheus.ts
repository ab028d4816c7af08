// A real Prometheus for tests: the binaries test/infra/prometheus/install.sh unpacks from
// Debian's package, started on loopback with a scrape config and rule files of the test's
// choosing, and queried over its HTTP API as Grafana and the rule engine would.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './metrics.js';

const CACHE = process.env.OZ_TEST_CACHE || '/root/.cache/oz-worker-test';

export interface PrometheusBinaries {
  prometheus: string;
  promtool: string;
  version: string;
}

/** The cached binaries, or why there are none (the suite prints it as its skip line). */
export function findPrometheus(): PrometheusBinaries | { why: string } {
  const envFile = join(CACHE, 'prometheus', 'env');
  if (!existsSync(envFile)) return { why: `no ${envFile} (run bash test/infra/prometheus/install.sh)` };
  const env = Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .map((line) => /^([A-Z_]+)=(.*)$/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
  const prometheus = env.PROMETHEUS_BIN ?? '';
  const promtool = env.PROMTOOL_BIN ?? '';
  if (!existsSync(prometheus) || !existsSync(promtool)) return { why: `the binaries named in ${envFile} are missing (rerun test/infra/prometheus/install.sh)` };
  return { prometheus, promtool, version: env.PROMETHEUS_VERSION ?? '?' };
}

export interface Run {
  code: number;
  output: string;
}

export function runTool(command: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((done) =>
    execFile(command, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) =>
      done({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: `${stdout}${stderr}` }),
    ),
  );
}

/** One series of a query's answer: its labels and its [unix seconds, value] samples. */
export interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

export class RealPrometheus {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
    private readonly log: () => string,
  ) {}

  /**
   * Starts Prometheus scraping `targets` every second and evaluating `ruleFiles` every second.
   * Rejects (with its log) when it does not become ready in 30 s.
   */
  static async start(binaries: PrometheusBinaries, options: { targets: string[]; ruleFiles: string[] }): Promise<RealPrometheus> {
    const dir = mkdtempSync(join(tmpdir(), 'oz-prometheus-'));
    const port = await freePort();
    const config = join(dir, 'prometheus.yml');
    writeFileSync(
      config,
      JSON.stringify({
        global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
        rule_files: options.ruleFiles,
        scrape_configs: [{ job_name: 'oz-worker', static_configs: [{ targets: options.targets }] }],
      }),
    );
    let output = '';
    const child = spawn(
      binaries.prometheus,
      [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    const prometheus = new RealPrometheus(`http://127.0.0.1:${port}`, child, dir, () => output);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) break;
      const ready = await fetch(`${prometheus.url}/-/ready`).then(
        (r) => r.ok,
        () => false,
      );
      if (ready) return prometheus;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    await prometheus.stop();
    throw new Error(`prometheus did not become ready (exit ${child.exitCode}):\n${output}`);
  }

  get output(): string {
    return this.log();
  }

  private async api<T>(path: string, params: Record<string, string>): Promise<T> {
    const response = await fetch(`${this.url}/api/v1/${path}?${new URLSearchParams(params)}`);
    const body = (await response.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`${path} ${JSON.stringify(params)}: ${body.errorType}: ${body.error}`);
    return body.data;
  }

  /** The expression evaluated at each second of [start, end] (unix seconds), as a Grafana time series panel asks. */
  async range(query: string, start: number, end: number, step = 1): Promise<Series[]> {
    const data = await this.api<{ result: Series[] }>('query_range', { query, start: String(start), end: String(end), step: String(step) });
    return data.result;
  }

  /** The expression at one moment, as an instant panel or a rule evaluation asks. */
  async instant(query: string, time: number): Promise<Series[]> {
    const data = await this.api<{ resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> | [number, string] }>(
      'query',
      { query, time: String(time) },
    );
    if (data.resultType === 'scalar') return [{ metric: {}, values: [data.result as [number, string]] }];
    return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((r) => ({ metric: r.metric, values: [r.value] }));
  }

  /** The loaded rule groups with each rule's health and last evaluation error. */
  async rules(): Promise<Array<{ name: string; rules: Array<{ name: string; health: string; lastError?: string; type: string }> }>> {
    return (await this.api<{ groups: never[] }>('rules', {})).groups;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Whether a query's answer has at least one sample that is a number (not NaN): the panel or alert shows something. */
export const hasData = (series: Series[]): boolean => series.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v))));
