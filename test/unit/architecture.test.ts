import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * Dependencies point down. Every folder of src/ (and every top-level file) has a layer;
 * a module may import its own folder and lower layers, never its own layer's neighbours
 * nor anything higher. The order is the data flow of the README's design section: what
 * stores and searches vectors knows nothing of training, evaluation or HTTP.
 * A new folder must be given a layer here, on purpose.
 *
 * Two parts, one above the other: the product (what `import 'lookalike'` and `lookalike
 * serve` run) and, beside it, the lab (src/lab/: benchmarks, evaluation, tuning, charts)
 * with the trainer of the head. The lab uses the product; the product never uses the lab.
 * The folders of src/lab/ are layers of their own ("lab/eval").
 */
const PRODUCT_LAYERS: string[][] = [
  ['errors', 'defaults'],
  ['validate'],
  ['paths'],
  ['math'],
  ['catalog', 'model'],
  ['image'],
  ['store'],
  ['search'],
  ['photo'],
  ['head'],
  ['indexing'],
  ['queue'],
  ['lookalike'],
  ['index', 'server'],
];
const LAB_LAYERS: string[][] = [
  ['lab/viz'],
  ['lab/eval'],
  ['lab/tune', 'train'],
  ['lab/bench'],
];
const LAYERS: string[][] = [...PRODUCT_LAYERS, ...LAB_LAYERS, ['cli']];
const LAB = new Set(LAB_LAYERS.flat());

const SRC = path.resolve(import.meta.dirname, '../../src');
const rank = new Map(LAYERS.flatMap((names, i) => names.map((n) => [n, i] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

/** The src/ files a file imports (static, dynamic and type-only imports, and re-exports). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
}

/** Import graph keyed by paths relative to src/ ("search/engine.ts"). */
type Graph = Map<string, string[]>;

/** `search/engine.ts` -> `search`; `lookalike.ts` -> `lookalike`; `lab/eval/report.ts` -> `lab/eval`. */
function moduleOfPath(file: string): string {
  const parts = file.split('/');
  return (parts[0] === 'lab' && parts.length > 2 ? `lab/${parts[1]}` : parts[0]).replace(/\.ts$/, '');
}

/**
 * The lab and trainer modules a CLI file imports statically (type-only imports aside):
 * the CLI loads them with import() inside the command that needs them, so that the other
 * commands (serve above all) start without them.
 */
function staticLabImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const found: string[] = [];
  for (const statement of source.statements) {
    const typeOnly = (ts.isImportDeclaration(statement) && statement.importClause?.isTypeOnly === true)
      || (ts.isExportDeclaration(statement) && statement.isTypeOnly);
    if (!(ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) || typeOnly || !statement.moduleSpecifier) continue;
    if (ts.isImportDeclaration(statement) && statement.importClause?.namedBindings && ts.isNamedImports(statement.importClause.namedBindings)
      && statement.importClause.namedBindings.elements.length > 0 && !statement.importClause.name
      && statement.importClause.namedBindings.elements.every((e) => e.isTypeOnly)) continue;
    const spec = (statement.moduleSpecifier as ts.StringLiteral).text;
    if (!spec.startsWith('.')) continue;
    const target = rel(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
    if (LAB.has(moduleOfPath(target))) found.push(`${rel(file)} -> ${target}`);
  }
  return found;
}

function upwardImports(graph: Graph): string[] {
  const upward: string[] = [];
  for (const [from, tos] of graph) {
    const source = moduleOfPath(from);
    for (const to of tos) {
      const target = moduleOfPath(to);
      if (target === source) continue;
      if ((rank.get(target) ?? Infinity) >= (rank.get(source) ?? -Infinity)) upward.push(`${from} -> ${to} (${source} may not import ${target})`);
    }
  }
  return upward;
}

function importCycles(graph: Graph): string[] {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const to of graph.get(f) ?? []) {
      if (state.get(to) === 'open') cycles.push([...stack.slice(stack.indexOf(to)), to].join(' -> '));
      else if (!state.has(to) && graph.has(to)) visit(to);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  return cycles;
}

const rel = (f: string) => path.relative(SRC, f).split(path.sep).join('/');
const files = sourceFiles(SRC);
const graph: Graph = new Map(files.map((f) => [rel(f), importsOf(f).map(rel)]));

describe('src/ architecture', () => {
  it('gives every folder and top-level file of src/ a layer', () => {
    const unknown = [...new Set([...graph.keys()].map(moduleOfPath))].filter((m) => !rank.has(m));
    expect(unknown, 'add these to LAYERS in test/unit/architecture.test.ts').toEqual([]);
  });

  it('resolves every relative import to a file in src/', () => {
    const missing = [...graph].flatMap(([from, tos]) => tos.filter((to) => !graph.has(to)).map((to) => `${from} -> ${to}`));
    expect(missing).toEqual([]);
  });

  it('has no import from a lower layer into a higher one, nor between folders of one layer', () => {
    expect(upwardImports(graph)).toEqual([]);
  });

  it('keeps the lab beside the product: no product module imports the lab or the trainer', () => {
    const product = new Set(PRODUCT_LAYERS.flat());
    const intoLab = [...graph].flatMap(([from, tos]) => (product.has(moduleOfPath(from)) ? tos.filter((to) => LAB.has(moduleOfPath(to))).map((to) => `${from} -> ${to}`) : []));
    expect(intoLab).toEqual([]);
    expect([...graph.keys()].filter((f) => f.startsWith('lab/')).every((f) => LAB.has(moduleOfPath(f)))).toBe(true);
  });

  it('loads the lab from the CLI only inside the commands that run it (import(), not a static import)', () => {
    expect(files.filter((f) => rel(f).startsWith('cli/')).flatMap(staticLabImports)).toEqual([]);
  });

  it('has no import cycle between files, type-only imports included', () => {
    expect(importCycles(graph)).toEqual([]);
  });

  it('lets the server and the CLI through the Lookalike door only: no engine or store reached through it, no image or model module in the server', () => {
    const reached = /\blookalike\.(?:engine|store)\b|\{[^}]*\b(?:engine|store)\b[^}]*\}\s*=\s*(?:ctx\.)?lookalike\b/i;
    const through = files.map(rel).filter((f) => /^(server|cli)\//.test(f) && reached.test(readFileSync(path.join(SRC, f), 'utf8')));
    expect(through, 'call a Lookalike method (src/lookalike.ts) instead').toEqual([]);
    const below = [...graph].filter(([from]) => from.startsWith('server/')).flatMap(([from, tos]) => tos.filter((to) => /^(image|model)\//.test(to)).map((to) => `${from} -> ${to}`));
    expect(below, 'the server translates HTTP to library calls').toEqual([]);
  });

  it('reports an upward import, an import within one layer and a cycle when they are written', () => {
    const bad: Graph = new Map([
      ['search/engine.ts', ['search/space.ts', 'train/train.ts']],
      ['search/space.ts', ['model/registry.ts']],
      ['train/train.ts', ['search/engine.ts', 'lab/eval/evaluate.ts']],
      ['lab/tune/tune.ts', ['train/train.ts']],
      ['model/registry.ts', []],
      ['lab/eval/evaluate.ts', []],
    ]);
    expect(upwardImports(bad)).toEqual([
      'search/engine.ts -> train/train.ts (search may not import train)',
      'lab/tune/tune.ts -> train/train.ts (lab/tune may not import train)',
    ]);
    expect(importCycles(bad)).toEqual(['search/engine.ts -> train/train.ts -> search/engine.ts']);
  });
});
