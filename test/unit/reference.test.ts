// docs/reference.md is generated from the code (src/cli/reference.ts): it must be
// what the code gives now, and the code and its documentation tables must agree
// both ways: nothing documented that does not exist, nothing existing that is
// undocumented, and every documented default the one the worker applies.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configKeys, defaultProblems, environmentReads, REFERENCE_PATH, referenceProblems, renderReference } from '../../src/cli/reference.js';
import { buildProgram } from '../../src/cli/program.js';
import { ENVIRONMENT_DOCS, KEY_DOCS } from '../../src/config/reference-docs.js';
import { REPO_ROOT } from '../support/worker-process.js';

const SOURCES = readdirSync(join(REPO_ROOT, 'src'), { recursive: true, encoding: 'utf8' })
  .filter((name) => name.endsWith('.ts'))
  .map((name) => readFileSync(join(REPO_ROOT, 'src', name), 'utf8'));
const PAGE = renderReference();

/** The rows of the markdown table that follows `heading` (a line of text before it). */
function tableAfter(page: string, heading: string): string[] {
  const start = page.indexOf(heading);
  expect(start, `no "${heading}" in the reference`).toBeGreaterThanOrEqual(0);
  const lines = page.slice(start).split('\n').slice(1);
  const first = lines.findIndex((line) => line.startsWith('|'));
  const rows = lines.slice(first);
  return rows.slice(
    2,
    rows.findIndex((line) => !line.startsWith('|')),
  );
}

const firstCell = (row: string): string => /^\| `([^`]+)`/.exec(row)?.[1] ?? '';

describe('docs/reference.md', () => {
  it('is what the code gives (run `node scripts/reference.mjs` after changing a flag, key or variable)', () => {
    expect(readFileSync(join(REPO_ROOT, REFERENCE_PATH), 'utf8')).toBe(PAGE);
  });

  it('agrees with the code both ways, defaults included', () => {
    expect(referenceProblems(SOURCES)).toEqual([]);
  });

  it('lists every worker flag, with the ones the Go worker lacks apart, defaults included', () => {
    const go = tableAfter(PAGE, "The Go worker's flags, same names and meanings:").map(firstCell);
    const ours = tableAfter(PAGE, 'Added by oz-worker (the Go worker has no such flag):');
    for (const option of buildProgram().options.filter((candidate) => candidate.long !== '--version')) {
      expect([...go, ...ours.map(firstCell)], option.flags).toContain(option.flags);
    }
    expect(go).toContain('--worker-id <id>');
    expect(go).not.toContain('--shutdown-grace-period <duration>');
    const row = (flag: string) => ours.find((candidate) => firstCell(candidate) === flag) ?? `(no row for ${flag})`;
    expect(row('--shutdown-grace-period <duration>')).toMatch(/^\| [^|]+ \| `25s` \| `shutdown_grace_period` \|/);
    expect(row('--device-owner-user-id <id>')).toContain('`device.owner_user_id`');
    expect(row('--device-team-id <id>')).toContain('`device.team_ids`');
    expect(row('--api-key-file <path>')).toMatch(/`api_key_file` \| `WARP_API_KEY_FILE` \|/);
  });

  it("lists every config key, our additions apart from the Go worker's keys", () => {
    const go = tableAfter(PAGE, "The Go worker's keys, same names and meanings:").map(firstCell);
    const ours = tableAfter(PAGE, 'Added by oz-worker (a Go worker refuses them as unknown):').map(firstCell);
    expect([...go, ...ours].sort()).toEqual(
      configKeys()
        .map((key) => key.path)
        .sort(),
    );
    for (const key of ['device', 'device.owner_user_id', 'device.team_ids', 'api_key_file', 'shutdown_grace_period', 'backend.direct.run_as_user']) {
      expect(ours, key).toContain(key);
      expect(go, key).not.toContain(key);
    }
    for (const key of ['worker_id', 'backend.kubernetes.pod_template', 'backend.command.dispatch_timeout']) expect(go).toContain(key);
  });

  it('shows the defaults the worker applies', () => {
    const rows = tableAfter(PAGE, "The Go worker's keys, same names and meanings:");
    const defaultOf = (key: string) => rows.find((row) => firstCell(row) === key)?.split(' | ')[1];
    expect(defaultOf('backend.kubernetes.namespace')).toBe('`default`');
    expect(defaultOf('backend.kubernetes.active_deadline_seconds')).toBe('`28800`');
    expect(defaultOf('backend.command.dispatch_timeout')).toBe('`1m`');
    expect(defaultOf('cleanup')).toBe('`true`');
  });

  it("shows each flag's default as --help does", () => {
    const commands = (command: ReturnType<typeof buildProgram>): ReturnType<typeof buildProgram>[] => [command, ...command.commands.flatMap(commands)];
    const program = buildProgram();
    let described = 0;
    for (const command of commands(program)) {
      const help = command.helpInformation().replace(/\s+/g, ' ');
      for (const option of command.options.filter((candidate) => candidate.defaultValueDescription)) {
        described++;
        expect(help, `${command.name()} ${option.flags}`).toContain(`(default: ${option.defaultValueDescription})`);
        expect(PAGE.replace(/\s+/g, ' ')).toContain(option.defaultValueDescription!.replace(/\|/g, '\\|'));
      }
    }
    expect(described).toBeGreaterThan(15);
    expect(program.helpInformation().replace(/\s+/g, ' ')).toContain('(e.g. 25s, 2m) (default: 25s)');
  });

  it('has a section, and every option, for each sub-command', () => {
    const sections = (command: ReturnType<typeof buildProgram>, path: string[] = []): void => {
      for (const sub of command.commands) {
        const here = [...path, sub.name()];
        const start = PAGE.indexOf(`### \`oz-worker ${here.join(' ')}`);
        expect(start, here.join(' ')).toBeGreaterThan(0);
        const section = PAGE.slice(start, PAGE.indexOf('\n### ', start + 1) >>> 0);
        for (const option of sub.options.filter((candidate) => candidate.long !== '--help'))
          expect(section, `${here.join(' ')} ${option.flags}`).toContain(`\`${option.flags.replace(/\|/g, '\\|')}\``);
        sections(sub, here);
      }
    };
    sections(buildProgram());
  });
});

describe('the checks behind it', () => {
  it('find a key the schema has that nothing documents, and a documented key the schema lacks', () => {
    const keys = [...configKeys(), { path: 'backend.docker.brand_new', kind: 'value' as const }];
    expect(referenceProblems(SOURCES, { keys })).toEqual([
      'config key backend.docker.brand_new is not documented: add it to KEY_DOCS in src/config/reference-docs.ts',
    ]);
    const keyDocs = { ...KEY_DOCS, 'backend.docker.gone_key': { description: 'x' } };
    expect(referenceProblems(SOURCES, { keyDocs })).toEqual(['KEY_DOCS documents backend.docker.gone_key, which the config file schema does not have']);
  });

  it('find a documented default the worker does not apply', () => {
    const keyDocs = { ...KEY_DOCS, 'backend.kubernetes.unschedulable_timeout': { description: 'x', default: '5m' } };
    expect(defaultProblems(keyDocs)).toEqual([
      'the documented default of backend.kubernetes.unschedulable_timeout, 5m, is not what the worker uses when the key is absent',
    ]);
  });

  it('find a variable the code reads that nothing documents, and a documented one nothing reads', () => {
    expect(referenceProblems([...SOURCES, 'const x = process.env.OZ_WORKER_SOMETHING_NEW;'])).toEqual([
      'the environment variable OZ_WORKER_SOMETHING_NEW is read by src/ but not documented: add it to ENVIRONMENT_DOCS in src/config/reference-docs.ts',
    ]);
    const environmentDocs = [...ENVIRONMENT_DOCS, { name: 'OZ_NOBODY_READS_THIS', group: 'worker' as const, description: 'x' }];
    expect(referenceProblems(SOURCES, { environmentDocs })).toEqual([
      'ENVIRONMENT_DOCS documents OZ_NOBODY_READS_THIS, which nothing in src/ reads (remove it, or say in readBy what reads it)',
    ]);
  });

  it('reads environment variables the ways the sources read them, not the ones they set', () => {
    expect(environmentReads('const a = env.A_B; const b = hostEnv.C_D; (options.env ?? process.env).NO_COLOR; env["E_F"]; env.SET_ME = "x";').sort()).toEqual([
      'A_B',
      'C_D',
      'E_F',
      'NO_COLOR',
    ]);
    expect(environmentReads("envFlag(hostEnv, 'OZ_G_H'); export const SOMETHING_ENV = 'OZ_I_J';").sort()).toEqual(['OZ_G_H', 'OZ_I_J']);
  });
});
