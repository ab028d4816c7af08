// Releasing: the workflow in .github/workflows/ is valid (actionlint) and does
// what docs/development.md says (on a version tag: test, npm publish with
// provenance, a multi-arch image from the Dockerfile tagged with the chart's
// appVersion, the chart naming that image); the image the Dockerfile builds is
// the one the chart's default image.repository names; every image tag the docs
// show is the chart's appVersion; scripts/release.mjs checks and edits what it says.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseDocument } from 'yaml';
import { REPO_ROOT, tempDir } from '../support/worker-process.js';

const read = (path: string): string => readFileSync(join(REPO_ROOT, path), 'utf8');
const VERSION = (JSON.parse(read('package.json')) as { version: string }).version;
const CHART = parseYaml(read('k8s/chart/oz-worker/Chart.yaml')) as { version: string; appVersion: string };
const DEFAULT_REPOSITORY = String(parseDocument(read('k8s/chart/oz-worker/values.yaml')).getIn(['image', 'repository']));
const WORKFLOWS = readdirSync(join(REPO_ROOT, '.github/workflows')).filter((name) => /\.ya?ml$/.test(name));

function release(args: string[], root = REPO_ROOT) {
  const result = spawnSync(process.execPath, [join(REPO_ROOT, 'scripts/release.mjs'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, OZ_RELEASE_ROOT: root },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  id?: string;
}
interface Workflow {
  on: { push: { tags: string[] } };
  jobs: Record<string, { needs?: string | string[]; steps: Step[]; permissions?: Record<string, string> }>;
}

describe('the image', () => {
  it("is the one the chart's default image.repository names, with the chart's appVersion as its tag", () => {
    const title = /org\.opencontainers\.image\.title="([^"]+)"/.exec(read('Dockerfile'))?.[1];
    expect(title).toBe('oz-worker');
    expect(DEFAULT_REPOSITORY.split('/').at(-1)).toBe(title);
    expect(CHART.appVersion).toBe(VERSION);
    expect(CHART.version).toBe(VERSION);
  });

  it("is shown in the docs with the chart's appVersion as its tag", () => {
    const pages = ['README.md', ...readdirSync(join(REPO_ROOT, 'docs')).map((name) => `docs/${name}`)];
    const tags = pages.flatMap((page) => [...read(page).matchAll(/\boz-worker:(\d[\w.-]*)/g)].map((match) => `${page}: ${match[1]}`));
    expect(tags.length).toBeGreaterThan(2);
    for (const tag of tags) expect(tag).toMatch(new RegExp(`: ${VERSION.replace(/\./g, '\\.')}$`));
  });
});

describe('scripts/release.mjs', () => {
  it('accepts the tag of the version, and names the version and the image for the workflow', () => {
    const ok = release(['check', `v${VERSION}`]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe(`version=${VERSION}\nimage_name=oz-worker\n`);
  });

  it('refuses a tag that is not the version, and a chart whose appVersion is not, saying what to change', () => {
    const wrongTag = release(['check', 'v9.9.9']);
    expect(wrongTag.code).toBe(1);
    expect(wrongTag.stderr).toBe(`release: tag v9.9.9 does not name package.json's version ${VERSION}: tag v${VERSION}, or bump the version first\n`);

    const copy = tempDir('release-copy');
    try {
      mkdirSync(join(copy.path, 'k8s/chart'), { recursive: true });
      cpSync(join(REPO_ROOT, 'k8s/chart/oz-worker'), join(copy.path, 'k8s/chart/oz-worker'), { recursive: true });
      cpSync(join(REPO_ROOT, 'package.json'), join(copy.path, 'package.json'));
      const chartPath = join(copy.path, 'k8s/chart/oz-worker/Chart.yaml');
      const text = readFileSync(chartPath, 'utf8').replace(/^appVersion: .*$/m, 'appVersion: "0.0.9"');
      writeFileSync(chartPath, text);
      const drifted = release(['check', `v${VERSION}`], copy.path);
      expect(drifted.code).toBe(1);
      expect(drifted.stderr).toContain(`appVersion 0.0.9; set both to ${VERSION}`);
    } finally {
      copy.cleanup();
    }
  });

  it("sets the chart's default image to the one pushed, keeping the rest of values.yaml", () => {
    const copy = tempDir('release-chart');
    try {
      cpSync(join(REPO_ROOT, 'k8s/chart/oz-worker'), join(copy.path, 'k8s/chart/oz-worker'), { recursive: true });
      const result = release(['chart-image', 'ghcr.io/acme/oz-worker'], copy.path);
      expect(result.code, result.stderr).toBe(0);
      const before = read('k8s/chart/oz-worker/values.yaml').split('\n');
      const after = readFileSync(join(copy.path, 'k8s/chart/oz-worker/values.yaml'), 'utf8').split('\n');
      const changed = after.filter((line, i) => line !== before[i]);
      expect(changed).toEqual(['  repository: ghcr.io/acme/oz-worker']);
      expect(release(['chart-image', 'ghcr.io/acme/oz-worker:1.0'], copy.path).code).toBe(1);
    } finally {
      copy.cleanup();
    }
  });
});

describe('.github/workflows/release.yml', () => {
  const workflow = parseYaml(read('.github/workflows/release.yml')) as Workflow;
  const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);
  const runs = steps.map((step) => step.run ?? '').join('\n');

  it('runs on a version tag, tests first, and publishes only after the tests', () => {
    expect(workflow.on.push.tags).toEqual(['v*.*.*']);
    expect(workflow.jobs.test!.steps.map((step) => step.run)).toEqual(expect.arrayContaining(['npm ci', 'npm test']));
    expect(runs).toContain('node scripts/release.mjs check "$GITHUB_REF_NAME"');
    for (const [name, job] of Object.entries(workflow.jobs)) if (name !== 'test') expect([job.needs ?? []].flat(), name).toContain('test');
  });

  it('publishes the npm package with provenance', () => {
    expect(runs).toMatch(/^npm publish --provenance\b/m);
    // npm refuses provenance for a package.json whose repository is not the one the workflow runs in.
    expect(runs.indexOf('"repository.url=git+https://github.com/${GITHUB_REPOSITORY}.git"')).toBeGreaterThan(-1);
    expect(runs.indexOf('repository.url=')).toBeLessThan(runs.indexOf('npm publish'));
    expect(workflow.jobs.npm!.permissions).toMatchObject({ 'id-token': 'write' });
  });

  it("pushes a multi-arch image built from the Dockerfile, tagged with the chart's appVersion", () => {
    const build = steps.find((step) => step.uses?.startsWith('docker/build-push-action@'));
    expect(build?.with).toMatchObject({ file: 'Dockerfile', push: true });
    expect(String(build?.with?.platforms).split(',')).toEqual(['linux/amd64', 'linux/arm64']);
    expect(build?.with?.tags).toBe('${{ steps.name.outputs.repository }}:${{ needs.test.outputs.version }}');
    expect(steps.some((step) => step.uses?.startsWith('docker/setup-buildx-action@'))).toBe(true);
  });

  it('packages the chart naming that image, pushes it and attaches it and the npm package to the release', () => {
    expect(runs).toContain('node scripts/release.mjs chart-image "${{ needs.image.outputs.repository }}"');
    expect(runs.indexOf('chart-image')).toBeLessThan(runs.indexOf('helm package'));
    expect(runs).toMatch(/helm push "release\/chart\/oz-worker-\$\{VERSION\}\.tgz"/);
    expect(runs).toMatch(/gh release create "\$GITHUB_REF_NAME" "release\/npm\/oz-worker-\$\{VERSION\}\.tgz" "release\/oz-worker-chart-\$\{VERSION\}\.tgz"/);
  });
});

describe('the workflows', () => {
  const cache = process.env.OZ_TEST_CACHE || '/root/.cache/oz-worker-test';
  const actionlint = join(cache, 'actionlint/bin/actionlint');
  const found = existsSync(actionlint);
  if (!found) console.log(`actionlint check skipped: ${actionlint} is missing (build it with bash test/infra/actionlint/build.sh)`);

  it.skipIf(!found)('pass actionlint', () => {
    expect(WORKFLOWS.length).toBeGreaterThan(0);
    const result = spawnSync(actionlint, ['-no-color', ...WORKFLOWS.map((name) => join('.github/workflows', name))], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(result.status, result.stdout + result.stderr).toBe(0);
  });

  it.skipIf(!found)('fail actionlint when broken (the check can fail)', () => {
    const copy = tempDir('actionlint');
    try {
      const broken = read('.github/workflows/release.yml').replace('runs-on: ubuntu-24.04', 'runs-on: ubuntu-24.04\n    timeout-minutes: soon');
      writeFileSync(join(copy.path, 'broken.yml'), broken);
      const result = spawnSync(actionlint, ['-no-color', join(copy.path, 'broken.yml')], { encoding: 'utf8' });
      expect(result.status).toBe(1);
      expect(result.stdout).toContain('timeout-minutes');
    } finally {
      copy.cleanup();
    }
  });
});
