// The npm package as a user gets it: what `npm pack` ships, an install into an
// empty folder (no dependencies to fetch, no engine warnings), and the old-Node
// path — `--help` and `--version` work, anything else names one command that
// runs it anyway, and that command does run.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir } from '../support/worker-process.js';

interface PackedFile {
  path: string;
  size: number;
}
interface PackResult {
  size: number;
  unpackedSize: number;
  files: PackedFile[];
}

const npm = (args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }) =>
  spawnSync('npm', args, { cwd: options.cwd, env: { ...process.env, ...options.env }, encoding: 'utf8', timeout: 180_000 });

/** Optional add-ons that ws, debug and node-fetch try to load and do without. */
const OPTIONAL_PEERS = new Set(['bufferutil', 'utf-8-validate', 'encoding', 'supports-color']);

const OLD_NODE = process.env.OZ_TEST_OLD_NODE ?? '/usr/bin/node';
function oldNodeVersion(): string | undefined {
  try {
    const version = execFileSync(OLD_NODE, ['--version'], { encoding: 'utf8' }).trim().replace(/^v/, '');
    const [major, minor] = version.split('.').map(Number);
    return major! < 22 || (major === 22 && minor! < 12) ? version : undefined;
  } catch {
    return undefined;
  }
}
const oldNode = oldNodeVersion();
if (!oldNode) console.log(`old-Node package tests skipped: ${OLD_NODE} is missing or not older than 22.12 (set OZ_TEST_OLD_NODE)`);

const dir = tempDir('package');
let packed: PackResult;
let tarball: string;
afterAll(() => dir.cleanup());

beforeAll(() => {
  const result = npm(['pack', '--json', '--ignore-scripts', '--pack-destination', dir.path], { cwd: REPO_ROOT });
  expect(result.status, result.stderr).toBe(0);
  const [info] = JSON.parse(result.stdout) as Array<PackResult & { filename: string }>;
  packed = info!;
  tarball = join(dir.path, info!.filename);
}, 120_000);

describe('npm pack', () => {
  it('ships the bundle, the bin and the examples, and nothing from development', () => {
    const paths = packed.files.map((file) => file.path);
    expect(paths).toEqual(expect.arrayContaining(['bin/oz-worker.js', 'dist/main.js', 'examples/echo-agent/oz', 'package.json', 'README.md']));
    expect(paths.filter((path) => path.endsWith('.map'))).toEqual([]);
    expect(paths.filter((path) => /^(src|test|bench|scripts|node_modules|\.ci)\//.test(path))).toEqual([]);
    // docs/development.md quotes 0.9 MB packed, 7.7 MB unpacked; the bounds leave room to grow.
    expect(packed.size).toBeLessThan(1_500_000);
    expect(packed.unpackedSize).toBeLessThan(12_000_000);
  });

  it('declares no runtime dependencies: everything it imports is in the bundle or built into Node', () => {
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest.dependencies ?? {}).toEqual({});
    const builtins = new Set(builtinModules);
    const bare = new Set<string>();
    const files = packed.files.filter((file) => file.path.startsWith('dist/') && file.path.endsWith('.js'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const text = readFileSync(join(REPO_ROOT, file.path), 'utf8');
      for (const match of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\b__require\s*\(\s*|\brequire\s*\(\s*)["']([^"'./][^"']*)["']/g)) {
        const specifier = match[1]!;
        if (!/^(@[\w.-]+\/)?[\w.-]+(\/[\w./-]+)?$/.test(specifier) || specifier.startsWith('node:')) continue;
        if (!builtins.has(specifier) && !OPTIONAL_PEERS.has(specifier)) bare.add(specifier);
      }
    }
    expect([...bare]).toEqual([]);
  });
});

describe('installed from the tarball into an empty folder', () => {
  let project: string;
  let installOutput: string;
  beforeAll(() => {
    project = join(dir.path, 'project');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), '{"name":"someone-else","private":true}\n');
    // The machine's npm (on an old Node where there is one): its engine check is what prints EBADENGINE.
    const env = oldNode ? { PATH: `${join(OLD_NODE, '..')}:${process.env.PATH}` } : {};
    const result = npm(['install', '--no-audit', '--no-fund', '--foreground-scripts', tarball], { cwd: project, env });
    installOutput = `${result.stdout}${result.stderr}`;
    expect(result.status, installOutput).toBe(0);
  }, 180_000);

  it('installs one package; on an old Node npm warns that it needs Node 22.12', () => {
    // package.json's engines is what npm checks: its warning names the package and the version it needs.
    if (oldNode) expect(installOutput).toMatch(/EBADENGINE[\s\S]*oz-worker[\s\S]*>=22\.12/);
    else expect(installOutput).not.toContain('EBADENGINE');
    expect(readdirSync(join(project, 'node_modules')).filter((name) => !name.startsWith('.'))).toEqual(['oz-worker']);
  });

  it.skipIf(!oldNode)('on an old Node prints --help and --version, and names the command that runs anything else', () => {
    const bin = join(project, 'node_modules/oz-worker/bin/oz-worker.js');
    const version = spawnSync(OLD_NODE, [bin, '--version'], { encoding: 'utf8' });
    expect(version.status).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = spawnSync(OLD_NODE, [bin, 'plan', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: oz-worker plan');

    copyFileSync(join(REPO_ROOT, 'test/fixtures/assignments/team.json'), join(project, 'team task.json'));
    const refused = spawnSync(OLD_NODE, [bin, 'plan', '--backend', 'direct', 'team task.json'], { cwd: project, encoding: 'utf8' });
    expect(refused.status).toBe(2);
    const lines = refused.stderr.trim().split('\n');
    expect(lines[0]).toBe(
      `oz-worker: error: Node.js ${oldNode} is too old; oz-worker needs Node.js 22.12 or newer (24 LTS recommended). Run it with a newer Node.js anyway:`,
    );
    // The package is not on the npm registry: the command runs this install, with a Node 24 npx fetches.
    expect(lines[1]).toBe(`  npx -p node@24 node ${realpathSync(bin)} plan --backend direct 'team task.json'`);
    expect(lines[1]).not.toMatch(/-p oz-worker/);
  });

  it.skipIf(!oldNode)(
    'the printed command runs it',
    () => {
      const reachable = npm(['view', 'node@24', 'version', '--json'], { cwd: project });
      if (reachable.status !== 0) {
        console.log(`npx -p node@24 check skipped: the npm registry did not answer (${reachable.stderr.trim().split('\n').pop()})`);
        return;
      }
      copyFileSync(join(REPO_ROOT, 'test/fixtures/assignments/team.json'), join(project, 'team.json'));
      const env = { ...process.env, PATH: `${join(OLD_NODE, '..')}:${process.env.PATH}` };
      const bin = join(project, 'node_modules/oz-worker/bin/oz-worker.js');
      const run = spawnSync('npx', ['--yes', '-p', 'node@24', 'node', bin, 'plan', '--backend', 'direct', 'team.json'], {
        cwd: project,
        env,
        encoding: 'utf8',
        timeout: 300_000,
      });
      // npm itself still runs on the old Node here, so its engine warning may precede the run.
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toContain('team:edit');
    },
    320_000,
  );
});

/** The user's shell: no npm_* variables from the npm that runs this test. */
function shellEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('npm_')));
  return { ...env, ...extra };
}

describe('hints say what runs where the user is', () => {
  const guideCommand = (output: string): string => /^ {4}(.*) local --demo$/m.exec(output)?.[1] ?? `(no local --demo line in: ${output})`;

  it('after npm install -g: oz-worker, and it runs', () => {
    const prefix = join(dir.path, 'global');
    const install = npm(['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { cwd: dir.path });
    expect(install.status, install.stderr).toBe(0);
    const home = join(dir.path, 'home-global');
    const env = shellEnv({ PATH: `${join(prefix, 'bin')}:${join(process.execPath, '..')}:/usr/bin:/bin`, HOME: home, XDG_CONFIG_HOME: join(home, '.config') });
    const guide = spawnSync('oz-worker', [], { cwd: dir.path, env, encoding: 'utf8' });
    expect(guide.status).toBe(2);
    const command = guideCommand(guide.stderr);
    expect(command).toBe('oz-worker');
    const version = spawnSync('/bin/sh', ['-c', `${command} --version`], { cwd: dir.path, env, encoding: 'utf8' });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  }, 120_000);

  it('in a clone: npx oz-worker inside it, npx --prefix from elsewhere, and both run', () => {
    const home = join(dir.path, 'home-clone');
    const env = shellEnv({ HOME: home, XDG_CONFIG_HOME: join(home, '.config'), PATH: `${join(process.execPath, '..')}:/usr/bin:/bin` });
    // npx installs the clone into its (empty) cache and runs its `prepare`: with dist/ up to date that rebuilds nothing,
    // so workers starting from this clone meanwhile (the other test files here) never find dist/ half made.
    const builtAt = statSync(join(REPO_ROOT, 'dist/main.js')).mtimeMs;
    for (const cwd of [join(REPO_ROOT, 'docs'), dir.path]) {
      const guide = spawnSync(process.execPath, [join(REPO_ROOT, 'bin/oz-worker.js')], { cwd, env, encoding: 'utf8' });
      const command = guideCommand(guide.stderr);
      expect(command).toBe(cwd === dir.path ? `npx --prefix ${REPO_ROOT} oz-worker` : 'npx oz-worker');
      const version = spawnSync('/bin/sh', ['-c', `${command} --version`], { cwd, env, encoding: 'utf8', timeout: 60_000 });
      expect(version.stdout.trim(), version.stderr).toMatch(/^\d+\.\d+\.\d+$/);
    }
    expect(statSync(join(REPO_ROOT, 'dist/main.js')).mtimeMs).toBe(builtAt);
  }, 130_000);
});

describe.skipIf(!oldNode)('a clone on an old Node', () => {
  it('names npx oz-worker, which runs the project with its own Node', () => {
    const bin = join(REPO_ROOT, 'bin/oz-worker.js');
    const fixture = 'test/fixtures/assignments/team.json';
    const refused = spawnSync(OLD_NODE, [bin, 'plan', '--backend', 'direct', fixture], { cwd: REPO_ROOT, encoding: 'utf8' });
    expect(refused.status).toBe(2);
    expect(refused.stderr.trim().split('\n')[1]).toBe(`  npx oz-worker plan --backend direct ${fixture}`);
    const elsewhere = spawnSync(OLD_NODE, [bin, 'plan', '--backend', 'direct', fixture], { cwd: dir.path, encoding: 'utf8' });
    expect(elsewhere.stderr.trim().split('\n')[1]).toBe(`  npx --prefix ${REPO_ROOT} oz-worker plan --backend direct ${fixture}`);

    const env = { ...process.env, PATH: `${join(OLD_NODE, '..')}:${process.env.PATH}` };
    const run = spawnSync('npx', ['oz-worker', 'plan', '--backend', 'direct', fixture], { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 120_000 });
    // npm runs on the old Node here: its engine warning (package.json's engines) may precede the run.
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('team:edit');
  }, 130_000);
});
