// Pure decisions of the direct backend: safe task ids, workspace layout, and
// which variables each process gets (docs/backends.md, "Direct backend").
import { describe, expect, it } from 'vitest';
import {
  agentEnv,
  harnessEnv,
  planWorkspace,
  setupEnv,
  taskEnv,
  teardownEnv,
  validateTaskIdForPath,
  workspaceMode,
} from '../../src/backends/direct/workspace.js';
import { mergeEnv, toProcessEnv, workerEnvWithoutCredentials } from '../../src/backends/shared/env.js';
import { LineSplitter } from '../../src/backends/shared/output-lines.js';
import type { DirectBackendConfig } from '../../src/config/worker-config.js';
import type { Task } from '../../src/protocol/messages.js';
import { TaskFailure } from '../../src/task/failure.js';

function failureOf(fn: () => void): TaskFailure | undefined {
  try {
    fn();
  } catch (error) {
    return error as TaskFailure;
  }
  return undefined;
}

describe('validateTaskIdForPath', () => {
  it.each([
    ['../escape', 'path separator'],
    ['a/../../escape', 'path separator'],
    ['/abs/path', 'path separator'],
    ['a\\b', 'path separator'],
    ['..', 'parent directory'],
    ['.', 'current or parent directory'],
    ['', 'empty'],
    ['a\0b', 'NUL'],
  ])('refuses %j (%s)', (id, problem) => {
    const failure = failureOf(() => validateTaskIdForPath(id));
    expect(failure).toBeInstanceOf(TaskFailure);
    expect(failure?.reason).toBe('workspace_setup');
    expect(failure?.message).toMatch(/^invalid task ID for workspace path: invalid task ID /);
    expect(failure?.message).toContain(problem);
  });

  it.each(['task-1', 'abc_DEF.123', '...', 'a..b', '550e8400-e29b-41d4-a716-446655440000'])('accepts %j', (id) => {
    expect(() => validateTaskIdForPath(id)).not.toThrow();
  });
});

describe('workspace layout', () => {
  const direct = (over: Partial<DirectBackendConfig>): DirectBackendConfig => ({
    workspaceRoot: '',
    targetDir: '',
    ozPath: '',
    setupCommand: '',
    teardownCommand: '',
    ...over,
  });

  it('gives each task its own directory under the root, with its git config inside', () => {
    const mode = workspaceMode(direct({ workspaceRoot: '/w' }), '/default');
    expect(planWorkspace(mode, 't1')).toEqual({ dir: '/w/t1', perTask: true, gitConfigPath: '/w/t1/.gitconfig' });
  });

  it('defaults the root', () => {
    expect(workspaceMode(direct({}), '/var/lib/oz/workspaces')).toEqual({ kind: 'per-task', root: '/var/lib/oz/workspaces' });
  });

  it('runs every task in the target directory, with the git config kept outside it', () => {
    const mode = workspaceMode(direct({ workspaceRoot: '/w', targetDir: '/repo' }), '/default');
    expect(planWorkspace(mode, 't1')).toEqual({ dir: '/repo', perTask: false, gitConfigPath: undefined });
  });
});

describe('harnessEnv', () => {
  const withHarness = (type: string | undefined): Task => ({ id: 't', agent_config_snapshot: { harness: type === undefined ? {} : { type } } });
  it.each<[string, Task, Array<[string, string]>]>([
    ['claude', withHarness('claude'), [['CLAUDE_CONFIG_DIR', '/tmp/workspace/.claude']]],
    ['codex', withHarness('codex'), [['CODEX_HOME', '/tmp/workspace/.codex']]],
    ['padded claude (trimmed)', withHarness('  claude\u0085'), [['CLAUDE_CONFIG_DIR', '/tmp/workspace/.claude']]],
    ['unknown harness', withHarness('other'), []],
    ['oz', withHarness('oz'), []],
    ['a prototype key', withHarness('constructor'), []],
    ['harness without type', withHarness(undefined), []],
    ['no snapshot', { id: 't' }, []],
  ])('%s', (_name, task, expected) => {
    expect(harnessEnv(task, '/tmp/workspace')).toEqual(expected);
  });
});

describe('environment composition', () => {
  const host = {
    HOME: '/home/w',
    PATH: '/usr/bin:/bin',
    TMPDIR: '/tmp/w',
    USER: 'w',
    LANG: 'C.UTF-8',
    WARP_API_KEY: 'wk_host_key_123',
    WARP_API_KEY_FILE: '/etc/oz/key',
    COPY_OF_KEY: 'wk_host_key_123',
    UNSET: undefined,
  };
  const base = taskEnv({
    common: ['TASK_ID=t1', 'GIT_TERMINAL_PROMPT=0', 'GH_PROMPT_DISABLED=1', 'WARP_SERVER_ROOT_URL=https://app.warp.dev', 'TOKEN=server', 'URL=a=b', 'NOEQUALS'],
    operatorEnv: { TOKEN: 'worker-map', TASK_ID: 'from-map', EXTRA: 'x' },
    task: { id: 't1', agent_config_snapshot: { harness: { type: 'codex' } } },
    workspaceDir: '/w/t1',
    gitConfigPath: '/w/t1/.gitconfig',
  });

  it('task env: common list, then the operator env (which wins), then harness dirs and the git config', () => {
    expect([...base]).toEqual([
      ['TASK_ID', 'from-map'],
      ['GIT_TERMINAL_PROMPT', '0'],
      ['GH_PROMPT_DISABLED', '1'],
      ['WARP_SERVER_ROOT_URL', 'https://app.warp.dev'],
      ['TOKEN', 'worker-map'],
      ['URL', 'a=b'],
      ['EXTRA', 'x'],
      ['CODEX_HOME', '/w/t1/.codex'],
      ['GIT_CONFIG_GLOBAL', '/w/t1/.gitconfig'],
    ]);
  });

  it('agent env: only HOME, TMPDIR, PATH from the host, the env file cannot redirect the git config', () => {
    const env = agentEnv({
      hostEnv: host,
      taskEnv: base,
      envFileVars: new Map([
        ['FROM_SETUP', '1'],
        ['GIT_CONFIG_GLOBAL', '/elsewhere'],
        ['PATH', '/opt/tool/bin:/usr/bin'],
      ]),
      gitConfigPath: '/w/t1/.gitconfig',
    });
    expect([...env.keys()]).toEqual([
      'HOME',
      'TMPDIR',
      'PATH',
      'TASK_ID',
      'GIT_TERMINAL_PROMPT',
      'GH_PROMPT_DISABLED',
      'WARP_SERVER_ROOT_URL',
      'TOKEN',
      'URL',
      'EXTRA',
      'CODEX_HOME',
      'GIT_CONFIG_GLOBAL',
      'FROM_SETUP',
    ]);
    expect(env.get('GIT_CONFIG_GLOBAL')).toBe('/w/t1/.gitconfig');
    expect(env.get('PATH')).toBe('/opt/tool/bin:/usr/bin');
    expect(env.has('WARP_API_KEY')).toBe(false);
    expect(env.has('USER')).toBe(false);
  });

  it('agent env: a WARP_API_KEY sent by the server for the task is passed (it is the task credential)', () => {
    const withTaskKey = taskEnv({ common: ['WARP_API_KEY=task-key'], operatorEnv: {}, task: { id: 't' }, workspaceDir: '/w', gitConfigPath: '/w/.gitconfig' });
    expect(agentEnv({ hostEnv: host, taskEnv: withTaskKey, envFileVars: new Map(), gitConfigPath: '/w/.gitconfig' }).get('WARP_API_KEY')).toBe('task-key');
  });

  it('agent env: host variables that are unset are not invented', () => {
    const env = agentEnv({ hostEnv: { PATH: '/bin' }, taskEnv: new Map(), envFileVars: new Map(), gitConfigPath: '/g' });
    expect([...env]).toEqual([
      ['PATH', '/bin'],
      ['GIT_CONFIG_GLOBAL', '/g'],
    ]);
  });

  it('the worker credential is removed from the host env, under any name', () => {
    const env = workerEnvWithoutCredentials(host, 'wk_host_key_123');
    expect([...env.keys()]).toEqual(['HOME', 'PATH', 'TMPDIR', 'USER', 'LANG']);
  });

  it('setup env: host (minus credential), task env, then OZ_* variables that win', () => {
    const env = setupEnv({
      hostEnv: { ...host, OZ_RUN_ID: 'spoofed' },
      apiKey: 'wk_host_key_123',
      taskEnv: mergeEnv(base, [['OZ_WORKER_BACKEND', 'spoofed']]),
      workspaceDir: '/w/t1',
      taskId: 't1',
      envFilePath: '/w/t1/oz-env-1',
    });
    expect(env.get('USER')).toBe('w');
    expect(env.get('TOKEN')).toBe('worker-map');
    expect(env.get('GIT_CONFIG_GLOBAL')).toBe('/w/t1/.gitconfig');
    expect(env.get('OZ_WORKSPACE_ROOT')).toBe('/w/t1');
    expect(env.get('OZ_WORKER_BACKEND')).toBe('direct');
    expect(env.get('OZ_RUN_ID')).toBe('t1');
    expect(env.get('OZ_ENVIRONMENT_FILE')).toBe('/w/t1/oz-env-1');
    expect(env.has('WARP_API_KEY')).toBe(false);
    expect(env.has('WARP_API_KEY_FILE')).toBe(false);
    expect(env.has('COPY_OF_KEY')).toBe(false);
  });

  it('teardown env: host (minus credential) and OZ_*/WARP_* variables, no task env', () => {
    const env = teardownEnv({ hostEnv: host, apiKey: 'wk_host_key_123', workspaceDir: '/w/t1', gitConfigPath: '/w/t1/.gitconfig', taskId: 't1' });
    expect(Object.fromEntries(env)).toEqual({
      HOME: '/home/w',
      PATH: '/usr/bin:/bin',
      TMPDIR: '/tmp/w',
      USER: 'w',
      LANG: 'C.UTF-8',
      OZ_WORKSPACE_ROOT: '/w/t1',
      WARP_WORKSPACE_ROOT: '/w/t1',
      GIT_CONFIG_GLOBAL: '/w/t1/.gitconfig',
      OZ_WORKER_BACKEND: 'direct',
      WARP_WORKER_BACKEND: 'direct',
      OZ_RUN_ID: 't1',
      WARP_RUN_ID: 't1',
    });
  });

  it('leaves out variables a process cannot receive, and says which', () => {
    const { env, dropped } = toProcessEnv(
      new Map([
        ['OK', 'yes'],
        ['', 'empty name'],
        ['A=B', 'x'],
        ['NUL', 'a\0b'],
        ['__proto__', 'kept as a plain name'],
      ]),
    );
    expect(Object.keys(env)).toEqual(['OK', '__proto__']);
    // biome-ignore lint/suspicious/noProto: the test is that a variable named __proto__ stays a plain entry
    expect(env.__proto__).toBe('kept as a plain name');
    expect(dropped).toEqual(['', 'A=B', 'NUL']);
  });
});

describe('LineSplitter', () => {
  function split(chunks: Array<string | Buffer>, max?: number): string[] {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line), max);
    for (const chunk of chunks) splitter.push(chunk);
    splitter.end();
    return lines;
  }

  it.each<[string, Array<string | Buffer>, string[], number?]>([
    ['lines across chunks', ['hel', 'lo\nwor', 'ld\n'], ['hello', 'world']],
    ['CRLF', ['a\r\nb\r\n'], ['a', 'b']],
    ['unterminated last line', ['a\nb'], ['a', 'b']],
    ['blank lines dropped', ['\n\n  \na\n'], ['a']],
    ['long line in pieces', ['abcdefgh'], ['abc', 'def', 'gh'], 3],
    ['UTF-8 split inside a character', [Buffer.from([0xc3]), Buffer.from([0xa9, 0x0a])], ['é']],
  ])('%s', (_name, chunks, expected, max) => {
    expect(split(chunks, max)).toEqual(expected);
  });
});
