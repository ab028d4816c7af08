// The layer rule of src/ (docs/ARCHITECTURE.md, "Layers"): no import climbs a
// layer, no backend directory imports another, and no files import each other
// in a cycle. The first block checks the real tree; the rest shows the check
// catches what it should.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importCycles, importEdges, layerOf, layerViolations, relativeImports, resolveSpecifier, withoutComments } from '../support/import-layers.js';

const SRC = join(import.meta.dirname, '..', '..', 'src');

function sourceFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(SRC, { recursive: true, encoding: 'utf8' })) {
    const file = entry.split('\\').join('/');
    if (file.endsWith('.ts')) files.set(file, readFileSync(join(SRC, file), 'utf8'));
  }
  return files;
}

describe('src/ imports', () => {
  const files = sourceFiles();
  const edges = importEdges(files);

  it('finds the imports of the tree (the check below looks at something)', () => {
    expect(files.size).toBeGreaterThan(50);
    expect(edges).toContainEqual({ from: 'worker/worker.ts', specifier: '../task/contract.js', to: 'task/contract.ts' });
    // A dynamic import: the registry loads each backend lazily.
    expect(edges).toContainEqual({ from: 'backends/registry.ts', specifier: './direct/index.js', to: 'backends/direct/index.ts' });
  });

  it('never climb a layer, and no backend directory imports another', () => {
    const problems = layerViolations(files.keys(), edges);
    expect(problems, `imports that break the layer order (docs/ARCHITECTURE.md, "Layers"):\n${problems.join('\n')}\n`).toEqual([]);
  });

  it('form no cycle between files (type-only imports count)', () => {
    const cycles = importCycles(edges).map((cycle) => cycle.map((file) => `src/${file}`).join(' -> '));
    expect(cycles, `import cycles:\n${cycles.join('\n')}\n`).toEqual([]);
  });
});

describe('relativeImports', () => {
  it.each([
    ["import { a } from './a.js';", ['./a.js']],
    ["import type { A } from '../task/contract.js';", ['../task/contract.js']],
    ['import {\n  a,\n  type B,\n} from "./multi.js";', ['./multi.js']],
    ["import * as k8s from '@kubernetes/client-node';", []],
    ["import './side-effect.js';", ['./side-effect.js']],
    ["export { a } from './re.js';\nexport * from './all.js';\nexport type { T } from './types.js';", ['./re.js', './all.js', './types.js']],
    ["const m = await import('./lazy.js');", ['./lazy.js']],
    ["const { run } = await import(\n  '../cli/run-worker.js'\n);", ['../cli/run-worker.js']],
    ["// import { a } from './commented.js';\n/* import('./block.js') */\nimport { b } from './real.js';", ['./real.js']],
    ["const url = 'http://example.com';\nimport { b } from './after-string.js';", ['./after-string.js']],
    ["const re = /'/g;\nimport { c } from './after-regex.js';", ['./after-regex.js']],
  ])('%s', (source, expected) => {
    expect(relativeImports(source)).toEqual(expected);
  });

  it('keeps line numbers when blanking comments', () => {
    expect(withoutComments('a /* x\ny */ b').split('\n')).toHaveLength(2);
  });
});

describe('layerOf', () => {
  it.each([
    ['version.ts', 'version.ts, types/'],
    ['types/proxy-from-env.d.ts', 'version.ts, types/'],
    ['errors/error-message.ts', 'errors'],
    ['task/contract.ts', 'task'],
    ['backends/shared/env.ts', 'backends/shared'],
    ['backends/docker/engine.ts', 'backends/docker'],
    ['backends/registry.ts', 'backends/registry.ts'],
    ['cli/main.ts', 'cli'],
    ['misc/thing.ts', undefined],
    ['backends/loose.ts', undefined],
    ['stray.ts', undefined],
  ])('%s is in %s', (file, name) => {
    expect(layerOf(file)?.name).toBe(name);
  });

  it('orders the layers lowest first', () => {
    const order = [
      'version.ts',
      'protocol/a.ts',
      'log/a.ts',
      'task/a.ts',
      'config/a.ts',
      'scope/a.ts',
      'agent/a.ts',
      'connection/a.ts',
      'observability/a.ts',
      'backends/shared/a.ts',
      'backends/direct/a.ts',
      'backends/registry.ts',
      'worker/a.ts',
      'server/a.ts',
      'local/a.ts',
      'service/a.ts',
      'tools/a.ts',
      'cli/a.ts',
    ];
    const ranks = order.map((file) => layerOf(file)!.rank);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
    expect(new Set(ranks).size).toBe(order.length);
  });
});

describe('resolveSpecifier', () => {
  it.each([
    ['worker/worker.ts', '../task/contract.js', 'task/contract.ts'],
    ['backends/registry.ts', './direct/index.js', 'backends/direct/index.ts'],
    ['cli/main.ts', '../../package.json', undefined],
  ])('%s + %s', (from, specifier, to) => {
    expect(resolveSpecifier(from, specifier)).toBe(to);
  });
});

describe('layerViolations and importCycles over a small graph', () => {
  const sources = new Map([
    ['worker/worker.ts', "import type { Backend } from '../task/contract.js';\nimport { shutdown } from './shutdown.js';"],
    ['worker/shutdown.ts', "import { cli } from '../cli/main.js';"],
    ['cli/main.ts', "const { run } = await import('../worker/worker.js');"],
    ['task/contract.ts', "import type { Logger } from '../log/logger.js';"],
    ['log/logger.ts', "import type { Task } from '../task/contract.js';"],
    ['backends/docker/docker-backend.ts', "import { LineSplitter } from '../direct/output-lines.js';\nimport { env } from '../shared/env.js';"],
    ['backends/direct/output-lines.ts', ''],
    ['backends/shared/env.ts', "import { load } from '../registry.js';"],
    ['backends/registry.ts', "const m = await import('./docker/docker-backend.js');"],
    ['misc/thing.ts', ''],
  ]);
  const edges = importEdges(sources);

  it('names the file, the import and both layers of each climbing import', () => {
    expect(layerViolations(sources.keys(), edges)).toEqual([
      'src/misc/thing.ts is in no layer: add its directory to the layer order (test/support/import-layers.ts and docs/ARCHITECTURE.md)',
      "src/worker/shutdown.ts imports '../cli/main.js' (src/cli/main.ts): layer worker may not import layer cli (cli is above worker)",
      "src/log/logger.ts imports '../task/contract.js' (src/task/contract.ts): layer log may not import layer task (task is above log)",
      "src/backends/docker/docker-backend.ts imports '../direct/output-lines.js' (src/backends/direct/output-lines.ts): layer backends/docker may not import layer backends/direct (sibling backend directories may not import each other)",
      "src/backends/shared/env.ts imports '../registry.js' (src/backends/registry.ts): layer backends/shared may not import layer backends/registry.ts (backends/registry.ts is above backends/shared)",
    ]);
  });

  it('allows imports of the own directory and of lower layers', () => {
    const allowed = importEdges(
      new Map([
        ['worker/worker.ts', "import { a } from './shutdown.js';\nimport type { B } from '../task/contract.js';"],
        ['backends/registry.ts', "const m = await import('./direct/index.js');"],
        ['backends/kubernetes/task-watch.ts', "import { backoff } from '../../connection/backoff.js';\nimport { s } from '../shared/env.js';"],
        ['tools/plan.ts', "import { w } from '../worker/worker.js';"],
      ]),
    );
    expect(layerViolations([], allowed)).toEqual([]);
  });

  it('prints each cycle as a path back to its start, type-only and dynamic imports included', () => {
    expect(importCycles(edges)).toEqual([
      ['backends/docker/docker-backend.ts', 'backends/shared/env.ts', 'backends/registry.ts', 'backends/docker/docker-backend.ts'],
      ['cli/main.ts', 'worker/worker.ts', 'worker/shutdown.ts', 'cli/main.ts'],
      ['log/logger.ts', 'task/contract.ts', 'log/logger.ts'],
    ]);
  });

  it('finds a file importing itself, and no cycle in a chain', () => {
    expect(importCycles([{ from: 'a/x.ts', specifier: './x.js', to: 'a/x.ts' }])).toEqual([['a/x.ts', 'a/x.ts']]);
    expect(
      importCycles([
        { from: 'a/x.ts', specifier: './y.js', to: 'a/y.ts' },
        { from: 'a/y.ts', specifier: './z.js', to: 'a/z.ts' },
      ]),
    ).toEqual([]);
  });
});
