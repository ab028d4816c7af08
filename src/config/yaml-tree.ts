// Turns a parsed YAML document into plain objects and arrays whose leaves keep
// both the resolved value and the text as written, and remembers the line of
// every key. Go's YAML decoder reads a string field from the scalar's text
// (`version: 1.10` stays "1.10"), and every config error must name its line.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type Pair } from 'yaml';

/** A YAML scalar: its YAML 1.2 core-schema value and its text as written. */
export class YamlScalar {
  constructor(
    /** string, number, boolean, bigint or null. */
    readonly value: unknown,
    /** The scalar's text: the string itself, or the source of a plain non-string (`1.10`, `0x10`, `yes`). */
    readonly text: string,
  ) {}
}

export type YamlPath = readonly (string | number)[];

export interface YamlTree {
  /** Mappings as objects, sequences as arrays, scalars as `YamlScalar`. */
  data: unknown;
  /** 1-based line of the key (or list item) at `path`, else of its nearest written ancestor. */
  lineOf(path: YamlPath): number | undefined;
}

/** A document the converter cannot represent (recursive alias, mapping used as a key). */
export class YamlShapeError extends Error {
  constructor(
    message: string,
    readonly line: number | undefined,
  ) {
    super(message);
  }
}

const MERGE_KEY = '<<';

export function documentToTree(doc: Document, lines: LineCounter): YamlTree {
  const positions = new Map<string, number>();
  const lineAt = (node: { range?: readonly number[] | null } | null | undefined): number | undefined => {
    const offset = node?.range?.[0];
    return offset === undefined ? undefined : lines.linePos(offset).line;
  };
  const remember = (path: YamlPath, line: number | undefined): void => {
    const id = pathId(path);
    if (line !== undefined && !positions.has(id)) positions.set(id, line);
  };

  const resolving = new Set<Node>();
  const convert = (raw: unknown, path: YamlPath): unknown => {
    let node = raw;
    if (isAlias(node)) {
      const target = node.resolve(doc);
      if (!target) throw new YamlShapeError(`alias *${node.source} does not name an anchor defined before it`, lineAt(node));
      node = target;
    }
    if (node === null || node === undefined) return new YamlScalar(null, '');
    if (isScalar(node)) {
      const value = node.value;
      const text = typeof value === 'string' ? value : (node.source ?? String(value));
      return new YamlScalar(value, text);
    }
    const collection = node as Node;
    if (resolving.has(collection)) throw new YamlShapeError('an alias refers to the mapping or list that contains it', lineAt(collection));
    resolving.add(collection);
    try {
      if (isSeq(collection))
        return collection.items.map((item, index) => {
          remember([...path, index], lineAt(item as Node));
          return convert(item, [...path, index]);
        });
      if (isMap(collection)) return convertMap(collection.items as Pair[], path);
      throw new YamlShapeError('unsupported YAML node', lineAt(collection));
    } finally {
      resolving.delete(collection);
    }
  };

  const convertMap = (pairs: Pair[], path: YamlPath): Record<string, unknown> => {
    const result: Record<string, unknown> = {};
    const merged: Pair[] = [];
    for (const pair of pairs) {
      const key = keyText(pair.key);
      if (key === undefined) throw new YamlShapeError('a mapping key must be a plain value, not a list or mapping', lineAt(pair.key as Node));
      if (key === MERGE_KEY && isScalar(pair.key) && pair.key.type === 'PLAIN') {
        merged.push(pair);
        continue;
      }
      remember([...path, key], lineAt(pair.key as Node));
      define(result, key, convert(pair.value, [...path, key]));
    }
    // `<<: *base` merges: explicitly written keys win over merged ones.
    for (const pair of merged) {
      const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
      for (const source of sources) {
        const value = convert(source, path);
        if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof YamlScalar) {
          throw new YamlShapeError('a "<<" merge key must name a mapping (or a list of mappings)', lineAt(pair.key as Node));
        }
        for (const [key, entry] of Object.entries(value)) {
          if (!Object.hasOwn(result, key)) {
            remember([...path, key], lineAt(pair.key as Node));
            define(result, key, entry);
          }
        }
      }
    }
    return result;
  };

  const data = convert(doc.contents, []);
  return {
    data,
    lineOf(path) {
      for (let length = path.length; length > 0; length--) {
        const line = positions.get(pathId(path.slice(0, length)));
        if (line !== undefined) return line;
      }
      return lineAt(doc.contents as Node | null);
    },
  };
}

/** Converts scalar leaves back to plain values (for opaque blocks such as `pod_template`). */
export function treeToPlain(value: unknown): unknown {
  if (value instanceof YamlScalar) return typeof value.value === 'bigint' ? Number(value.value) : value.value;
  if (Array.isArray(value)) return value.map(treeToPlain);
  if (typeof value === 'object' && value !== null) {
    const result: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(value)) define(result, key, treeToPlain(entry));
    return result;
  }
  return value;
}

function keyText(key: unknown): string | undefined {
  if (key === null || key === undefined) return '';
  if (isScalar(key)) return typeof key.value === 'string' ? key.value : (key.source ?? String(key.value));
  return undefined;
}

/** Sets an own property even for names such as `__proto__`. */
function define(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function pathId(path: YamlPath): string {
  return JSON.stringify(path);
}
