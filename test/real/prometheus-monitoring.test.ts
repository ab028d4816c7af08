// The Grafana dashboard and the alert rules against a real Prometheus (Debian's package, via
// test/infra/prometheus/install.sh) scraping a real worker that ran tasks: every panel, variable
// and alert expression returns data, the rule engine evaluates every rule without error and
// each alert went pending; promtool accepts the rules file, the chart's PrometheusRule and the
// rules' own unit tests. Skips, saying why, when prometheus is not installed or does not start.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startDirectWorker, type DirectHarness } from '../support/direct-worker.js';
import { assignment } from '../support/fake-dispatch-server.js';
import { until } from '../support/local-server.js';
import { freePort } from '../support/metrics.js';
import { findPrometheus, hasData, RealPrometheus, runTool, type PrometheusBinaries } from '../support/real-prometheus.js';
import { CHART, findHelm, only, parseManifests, REPO_ROOT, run } from './helm-support.js';

const RULES = join(CHART, 'rules/oz-worker-alerts.yaml');
const DASHBOARD = join(CHART, 'dashboards/oz-worker.json');
const RULE_TESTS = join(REPO_ROOT, 'test/fixtures/prometheus/oz-worker-alerts.test.yaml');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Target {
  refId: string;
  expr: string;
  instant?: boolean;
  datasource: { uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { uid: string };
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
}

const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; title: string; panels: Panel[]; templating: { list: Variable[] } };
const queryPanels = dashboard.panels.filter((p) => p.type !== 'row');

const found = findPrometheus();
let binaries: PrometheusBinaries | undefined = 'why' in found ? undefined : found;
let skip = 'why' in found ? found.why : undefined;
// Started here, not in a hook, so that a Prometheus that cannot start here is a skip, not a failure.
const metricsPort = await freePort();
let prometheus: RealPrometheus | undefined;
if (binaries) {
  prometheus = await RealPrometheus.start(binaries, { targets: [`127.0.0.1:${metricsPort}`], ruleFiles: [RULES] }).catch((error: Error) => {
    skip = `prometheus ${binaries?.version} did not start here: ${error.message.split('\n')[0]}`;
    binaries = undefined;
    return undefined;
  });
}
if (skip) console.log(`real Prometheus suite skipped: ${skip}`);

/** What Grafana sends for a panel's query with every variable at "All". */
const asGrafanaSends = (expr: string, rangeSeconds: number): string =>
  expr.replaceAll('$__rate_interval', '20s').replaceAll('$__range', `${rangeSeconds}s`).replaceAll('$job', '.*').replaceAll('$instance', '.*');

describe.skipIf(!prometheus)('dashboard and alert rules on a real Prometheus scraping a worker that ran tasks', () => {
  const p = prometheus as RealPrometheus;
  const bin = binaries as PrometheusBinaries;
  let harness: DirectHarness;
  let start = 0;
  let alive = 0;
  let end = 0;
  let exported = new Set<string>();

  afterAll(async () => {
    await harness?.close();
    await p.stop();
  });

  // The scenario: the worker full and turning a task away, tasks that succeed and fail (the agent's
  // exit, a setup command), its connection dropped again and again, then refused, then the process gone.
  beforeAll(async () => {
    start = Math.floor(Date.now() / 1000) - 1;
    harness = await startDirectWorker({
      args: ['--max-concurrent-tasks', '1'],
      env: { OTEL_METRICS_EXPORTER: 'prometheus', OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1', OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort) },
      directYaml: `setup_command: 'test -z "$FAIL_SETUP"'`,
    });
    const { server, worker } = harness;
    await server.waitForConnection();
    const scraped = async (query: string) => hasData(await p.instant(query, Date.now() / 1000));
    await until(() => scraped('oz_worker_connected == 1'), 20_000, 'Prometheus to scrape the connected worker');

    const finish = async (id: string, env: Record<string, string>, status: string) => {
      server.assign(assignment(id, { env_vars: env }));
      await server.waitForMessage(status, id, 30_000);
    };
    server.assign(assignment('long', { env_vars: { FAKE_OZ_SLEEP_MS: '10000' } }));
    await server.waitForMessage('task_claimed', 'long');
    await until(() => scraped('oz_worker_tasks_active == 1'), 8_000, 'the full worker to be scraped');
    server.assign(assignment('turned-away'));
    await server.waitForMessage('task_rejected', 'turned-away');
    await until(() => scraped('oz_worker_tasks_rejected_total{reason="at_capacity"} == 1'), 10_000, 'the rejection to be scraped');
    await server.waitForMessage('task_completed', 'long', 30_000);
    await finish('quick', { FAKE_OZ_SLEEP_MS: '1200' }, 'task_completed');
    for (const id of ['agent-fails-1', 'agent-fails-2', 'agent-fails-3']) await finish(id, { FAKE_OZ_EXIT: '3' }, 'task_failed');
    await finish('setup-fails', { FAIL_SETUP: '1' }, 'task_failed');
    await until(() => scraped('sum(oz_worker_tasks_completed_total{result="failed"}) == 4'), 10_000, 'the failures to be scraped');
    // Every family by now (the duration histogram appears with the first finished task).
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));

    for (let drop = 1; drop <= 5; drop++) {
      const dials = server.handshakes.length;
      server.dropConnections();
      await until(() => server.handshakes.length > dials && server.connectionCount === 1, 10_000, 'the worker to connect again');
    }
    await until(() => scraped('oz_worker_websocket_reconnects_total{reason="remote_close"} >= 5'), 10_000, 'the reconnects to be scraped');
    server.refuseWith = 503;
    server.dropConnections();
    await until(() => scraped('oz_worker_connected == 0'), 10_000, 'the disconnection to be scraped');
    await new Promise((r) => setTimeout(r, 3_000));
    alive = Math.floor(Date.now() / 1000);
    await worker.stop();
    await until(() => scraped('up{job="oz-worker"} == 0'), 10_000, 'the failed scrape to be recorded');
    await new Promise((r) => setTimeout(r, 2_500));
    end = Math.ceil(Date.now() / 1000);
  }, 240_000);

  it('uses only metric names the worker exports', () => {
    const names = [...rules.map((r) => r.expr), ...queryPanels.flatMap((panel) => (panel.targets ?? []).map((t) => t.expr))].flatMap((expr) => [
      ...expr.matchAll(/\boz_worker_[a-z_]+/g),
    ]);
    expect(names.length).toBeGreaterThan(20);
    for (const [name] of names) expect(exported, name).toContain(name.replace(/_(bucket|sum|count)$/, ''));
  });

  it('every alert expression returns data, and each alert went pending in the rule engine', async () => {
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['OzWorkerDown', 'OzWorkerDisconnected', 'OzWorkerHighFailureRate', 'OzWorkerStuckAtCapacity']),
    );
    for (const rule of rules) {
      expect(hasData(await p.range(rule.expr, start, end)), `${rule.alert}: ${rule.expr}`).toBe(true);
      expect(hasData(await p.range(`ALERTS{alertname="${rule.alert}", alertstate="pending"}`, start, end)), `${rule.alert} never went pending`).toBe(true);
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels?.severity);
    }
    const evaluated = (await p.rules()).flatMap((g) => g.rules);
    expect(evaluated.map((r) => r.name).sort()).toEqual(rules.map((r) => r.alert).sort());
    for (const rule of evaluated)
      expect({ rule: rule.name, health: rule.health, error: rule.lastError ?? '' }).toEqual({ rule: rule.name, health: 'ok', error: '' });
  });

  it('the failing task and the preemption reason are labelled as operators query them', async () => {
    const reasons = await p.instant('sum by (reason) (oz_worker_task_failures_total) > 0', alive);
    expect(Object.fromEntries(reasons.map((s) => [s.metric.reason, Number(s.values[0]![1])]))).toEqual({ agent_invocation: 3, setup_command: 1 });
    expect(hasData(await p.instant('oz_worker_task_failures_total{phase="backend", reason="pod_preempted"} == 0', alive))).toBe(true);
    const infrastructure = await p.range(rules.find((r) => r.alert === 'OzWorkerInfrastructureFailures')!.expr, start, end);
    expect(infrastructure.map((s) => s.metric.reason)).toEqual(['setup_command']);
  });

  it('every dashboard panel and variable query returns data', async () => {
    expect(queryPanels.length).toBeGreaterThanOrEqual(15);
    for (const panel of queryPanels) {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.datasource.uid, panel.title).toBe('${datasource}');
        const query = asGrafanaSends(target.expr, end - start);
        const answer = target.instant ? await p.instant(query, alive) : await p.range(query, start, end);
        expect(hasData(answer), `${panel.title} ${target.refId}: ${query}`).toBe(true);
      }
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const text = typeof variable.query === 'string' ? variable.query : variable.query.query;
      const match = /^label_values\((.+), (\w+)\)$/.exec(text);
      expect(match, text).not.toBeNull();
      const values = await p.instant(`group by (${match![2]}) (${asGrafanaSends(match![1]!, 0)})`, alive);
      expect(values.map((s) => s.metric[match![2]!]).filter(Boolean).length, variable.name).toBeGreaterThan(0);
    }
  });

  it('the queries docs/operations.md suggests return data', async () => {
    const doc = readFileSync(join(REPO_ROOT, 'docs/operations.md'), 'utf8');
    const queries = [...doc.matchAll(/```promql\n([\s\S]*?)```/g)].flatMap((m) =>
      m[1]!
        .split('\n')
        .map((line) => line.replace(/\s+#.*$/, '').trim())
        .filter(Boolean),
    );
    expect(queries.length).toBeGreaterThanOrEqual(3);
    for (const query of queries) expect(hasData(await p.range(query, start, end)), query).toBe(true);
  });

  it('the dashboard is laid out on a 24-column grid with unique panel ids and a data source variable', () => {
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(new Set(dashboard.panels.map((panel) => panel.id)).size).toBe(dashboard.panels.length);
    for (const panel of dashboard.panels) expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');
  });

  it('promtool accepts the rules file, and its unit tests pass (alerts fire after their for:, not on a blip)', async () => {
    const check = await runTool(bin.promtool, ['check', 'rules', RULES]);
    expect(check.code, check.output).toBe(0);
    expect(check.output).toContain(`SUCCESS: ${rules.length} rules found`);
    const unit = await runTool(bin.promtool, ['test', 'rules', RULE_TESTS]);
    expect(unit.code, unit.output).toBe(0);
  });

  const helm = findHelm();
  it.skipIf('why' in helm)('the chart renders the same rules as a PrometheusRule promtool accepts, and the dashboard as a sidecar ConfigMap', async () => {
    const helmBin = (helm as { helm: string }).helm;
    const render = async (extra: string[]) => {
      const result = await run(helmBin, [
        'template',
        'oz',
        CHART,
        '--namespace',
        'agents',
        '--set',
        'worker.workerId=w1',
        '--set',
        'image.repository=registry.example.com/oz-worker',
        ...extra,
      ]);
      expect(result.code, result.stderr).toBe(0);
      return parseManifests(result.stdout);
    };
    const off = await render(['--set', 'metrics.enabled=true']);
    expect(off.filter((m) => m.kind === 'PrometheusRule' || m.metadata.name.endsWith('-dashboard'))).toEqual([]);

    const on = await render([
      '--set',
      'metrics.enabled=true',
      '--set',
      'metrics.prometheusRule.create=true',
      '--set',
      'metrics.prometheusRule.additionalLabels.release=kube-prometheus-stack',
      '--set',
      'metrics.prometheusRule.ruleLabels.team=platform',
      '--set',
      'metrics.grafanaDashboard.create=true',
    ]);
    const rule = only(on, 'PrometheusRule');
    expect(rule.metadata.labels.release).toBe('kube-prometheus-stack');
    const scratch = mkdtempSync(join(tmpdir(), 'oz-rule-'));
    try {
      const spec = join(scratch, 'spec.yaml');
      writeFileSync(spec, JSON.stringify(rule.spec));
      const check = await runTool(bin.promtool, ['check', 'rules', spec]);
      expect(check.code, check.output).toBe(0);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    const rendered = (rule.spec.groups as { rules: Rule[] }[]).flatMap((g) => g.rules);
    expect(rendered.map(({ labels, ...rest }) => ({ ...rest, severity: labels?.severity, team: labels?.team }))).toEqual(
      rules.map(({ labels, ...rest }) => ({ ...rest, severity: labels?.severity, team: 'platform' })),
    );

    const configMap = only(on, 'ConfigMap', 'oz-oz-worker-dashboard');
    expect(configMap.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(configMap.data['oz-worker.json'] as string)).toEqual(dashboard);
  });
});
