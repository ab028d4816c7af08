// The layer rule of src/ (docs/ARCHITECTURE.md, "Layers") as pure functions:
// which relative specifiers a file imports, which layer a file belongs to, and
// which imports climb a layer or close a cycle. The check in
// test/unit/import-layers.test.ts feeds them the real tree.
import { posix } from 'node:path';

/**
 * The layers, lowest first. A file may import its own layer or a lower one.
 * Inside backends/, the backend directories share one rank but are separate
 * layers, so none of them may import another.
 */
const LAYER_ORDER: readonly string[] = [
  'version.ts, types/',
  'errors',
  'protocol',
  'log',
  'task',
  'config',
  'scope',
  'agent',
  'connection',
  'observability',
  'backends/shared',
  'backends/<backend>',
  'backends/registry.ts',
  'worker',
  'server',
  'local',
  'service',
  'tools',
  'cli',
];

export interface Layer {
  /** What failure messages call it: `backends/docker`, `worker`. */
  name: string;
  rank: number;
}

function layer(name: string, rankName = name): Layer {
  return { name, rank: LAYER_ORDER.indexOf(rankName) };
}

/** The layer of a file, by its path below src/ (`worker/worker.ts`); undefined when it belongs to none. */
export function layerOf(file: string): Layer | undefined {
  const parts = file.split('/');
  const top = parts[0]!;
  if (parts.length === 1) return file === 'version.ts' ? layer('version.ts, types/') : undefined;
  if (top === 'types') return layer('version.ts, types/');
  if (top === 'backends') {
    if (parts.length === 2) return file === 'backends/registry.ts' ? layer('backends/registry.ts') : undefined;
    if (parts[1] === 'shared') return layer('backends/shared');
    return layer(`backends/${parts[1]}`, 'backends/<backend>');
  }
  return LAYER_ORDER.includes(top) && !top.includes('/') ? layer(top) : undefined;
}

/**
 * The relative specifiers `source` imports: static `import … from`, side-effect
 * `import '…'`, `export … from` (type-only ones too) and dynamic `import('…')`.
 * Comments are left out, so a specifier quoted in one does not count; an
 * import statement quoted inside a string literal would still count.
 */
export function relativeImports(source: string): string[] {
  const code = withoutComments(source);
  const found: Array<{ at: number; specifier: string }> = [];
  const patterns = [
    // The clause between the keyword and `from` holds only names, braces, commas, `*` and `type`/`as`.
    /(?<![\w$.])(?:import|export)\s+(?:[\w$*{},\s]*?\s*)from\s*(['"])(\.{1,2}\/[^'"]*)\1/g,
    /(?<![\w$.])import\s*(['"])(\.{1,2}\/[^'"]*)\1/g,
    /(?<![\w$.])import\s*\(\s*(['"])(\.{1,2}\/[^'"]*)\1\s*[,)]/g,
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) found.push({ at: match.index, specifier: match[2]! });
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.specifier);
}

/** `source` with comments blanked out; strings, template literals and regular expressions are kept as they are. */
export function withoutComments(source: string): string {
  let out = '';
  let i = 0;
  // Whether a `/` here starts a regular expression rather than dividing.
  let regexAllowed = true;
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? source.length : end + 2;
      out += source.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
      continue;
    }
    if (c === '"' || c === "'" || c === '`' || (c === '/' && regexAllowed)) {
      const start = i++;
      let inClass = false;
      while (i < source.length) {
        const d = source[i]!;
        if (d === '\\') i += 2;
        else if (c === '/' && d === '[') (inClass = true), i++;
        else if (c === '/' && d === ']') (inClass = false), i++;
        else if (d === c && !inClass) {
          i++;
          break;
        } else if (d === '\n' && c !== '`') break;
        else i++;
      }
      out += source.slice(start, i);
      regexAllowed = false;
      continue;
    }
    out += c;
    i++;
    if (/\s/.test(c)) continue;
    // After a name, a number or a closing bracket, `/` divides; after an operator it starts a regex.
    regexAllowed = !/[\w$)\]]/.test(c) || /(?:^|[^\w$])(?:return|typeof|case|do|else|in|of|new|delete|void|throw|yield|await)$/.test(out);
  }
  return out;
}

/** One file's import of another, both as paths below src/. */
export interface ImportEdge {
  from: string;
  specifier: string;
  to: string;
}

/** The file below src/ a relative specifier names (`.js` is the compiled name of a `.ts` file); undefined when outside src/. */
export function resolveSpecifier(from: string, specifier: string): string | undefined {
  const target = posix.normalize(posix.join(posix.dirname(from), specifier));
  if (target.startsWith('../')) return undefined;
  return target.replace(/\.js$/, '.ts');
}

/** Every import edge of the given files (path below src/ → source text). */
export function importEdges(files: ReadonlyMap<string, string>): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const [from, source] of files) {
    for (const specifier of relativeImports(source)) {
      const to = resolveSpecifier(from, specifier);
      if (to !== undefined) edges.push({ from, specifier, to });
    }
  }
  return edges;
}

/** Files in no layer, and imports that climb: each a sentence naming the file, the import and both layers. */
export function layerViolations(files: Iterable<string>, edges: readonly ImportEdge[]): string[] {
  const problems: string[] = [];
  for (const file of files) {
    if (layerOf(file) === undefined)
      problems.push(`src/${file} is in no layer: add its directory to the layer order (test/support/import-layers.ts and docs/ARCHITECTURE.md)`);
  }
  for (const edge of edges) {
    const from = layerOf(edge.from);
    const to = layerOf(edge.to);
    if (from === undefined || to === undefined || from.name === to.name || to.rank < from.rank) continue;
    const why = to.rank === from.rank ? 'sibling backend directories may not import each other' : `${to.name} is above ${from.name}`;
    problems.push(`src/${edge.from} imports '${edge.specifier}' (src/${edge.to}): layer ${from.name} may not import layer ${to.name} (${why})`);
  }
  return problems;
}

/** The import cycles between files, each as a path that ends where it starts (one per strongly connected group). */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    if (!next.has(from)) next.set(from, []);
    if (!next.get(from)!.includes(to)) next.get(from)!.push(to);
  }
  const cycles: string[][] = [];
  for (const group of stronglyConnected(next)) {
    const start = [...group].sort()[0]!;
    const selfLoop = next.get(start)?.includes(start) ?? false;
    if (group.size === 1 && !selfLoop) continue;
    cycles.push(cycleThrough(start, group, next));
  }
  return cycles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** Tarjan's algorithm: the strongly connected groups of the graph. */
function stronglyConnected(next: ReadonlyMap<string, string[]>): Array<Set<string>> {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const groups: Array<Set<string>> = [];
  const visit = (node: string): void => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const target of next.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const group = new Set<string>();
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        group.add(member);
      } while (member !== node);
      groups.push(group);
    }
  };
  for (const node of [...next.keys()].sort()) if (!index.has(node)) visit(node);
  return groups;
}

/** A shortest path from `start` back to itself inside its group (breadth first). */
function cycleThrough(start: string, group: ReadonlySet<string>, next: ReadonlyMap<string, string[]>): string[] {
  const cameFrom = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const target of next.get(node) ?? []) {
      if (!group.has(target)) continue;
      if (target === start) {
        const path: string[] = [];
        for (let at = node; at !== start; at = cameFrom.get(at)!) path.unshift(at);
        return [start, ...path, start];
      }
      if (!cameFrom.has(target)) {
        cameFrom.set(target, node);
        queue.push(target);
      }
    }
  }
  return [start, start];
}
