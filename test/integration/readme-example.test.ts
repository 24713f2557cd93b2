import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { DEFAULT_K } from '../../src/defaults.js';
import { defaultItems, drawProduct, makeCatalog, tempDir } from '../helpers/fixtures.js';

// The README's "Use it from Node" program, run as it stands: a plain `node` process in a
// folder whose node_modules/lookalike is this package, so `from 'lookalike'` goes through
// package.json "exports" to the built dist/ (rebuilt here when older than src/).
const run = promisify(execFile);
const items = defaultItems();
const byId = new Map(items.map((i) => [i.id, i]));
let work: string;

/** The first ```js block under "## Use it from Node". */
function readmeExample(): string {
  const readme = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Use it from Node'));
  const code = section?.match(/```js\n([\s\S]*?)```/)?.[1];
  if (!code) throw new Error('README.md has no ```js block under "## Use it from Node"');
  return code;
}

function newestMtime(dir: string): number {
  return Math.max(...readdirSync(dir, { withFileTypes: true }).map((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs;
  }));
}

async function ensureLibraryBuilt(): Promise<void> {
  const entry = path.join(PACKAGE_ROOT, 'dist', 'index.js');
  const types = path.join(PACKAGE_ROOT, 'dist', 'index.d.ts');
  if (existsSync(entry) && existsSync(types) && statSync(entry).mtimeMs >= newestMtime(path.join(PACKAGE_ROOT, 'src'))) return;
  await run(process.execPath, [path.join(PACKAGE_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: PACKAGE_ROOT });
}

async function runExample(): Promise<string[]> {
  const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: work });
  return stdout.trim().split('\n');
}

describe('the README example', () => {
  beforeAll(async () => {
    await ensureLibraryBuilt();
    work = tempDir('lookalike-readme-');
    mkdirSync(path.join(work, 'node_modules'));
    symlinkSync(PACKAGE_ROOT, path.join(work, 'node_modules', 'lookalike'), 'dir');
    writeFileSync(path.join(work, 'example.mjs'), readmeExample());
    writeFileSync(path.join(work, 'photo.jpg'), await drawProduct('shirt', '#e90'));
    // The catalog starts without the bags; they are added before the second run.
    await makeCatalog(items.filter((i) => i.shape !== 'bag'), { dir: path.join(work, 'catalog') });
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('declares the built entry and its types in package.json', () => {
    const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { types: string; exports: Record<string, { types: string; import: string }> };
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', import: './dist/index.js' });
    expect(pkg.types).toBe('./dist/index.d.ts');
    const declarations = readFileSync(path.join(PACKAGE_ROOT, 'dist', 'index.d.ts'), 'utf8');
    for (const name of ['Lookalike', 'buildIndex', 'LookalikeError', 'isLookalikeError', 'ERRORS', 'ErrorCode', 'SearchHit']) expect(declarations).toContain(name);
  });

  it('indexes the catalog, searches by photo with a filter, finds more like a result and names an error by its code', async () => {
    const lines = await runExample();
    expect(lines[0]).toBe('indexed: 12 added, 0 removed, 12 in the index');
    const photo = lines.filter((l) => l.startsWith('photo ')).map((l) => l.split(' '));
    expect(photo).toHaveLength(4);
    expect(photo.map((p) => p[1])).toEqual(['1', '2', '3', '4']);
    for (const [, , id] of photo) expect(byId.get(id)!.metadata!.gender).toBe('Women');
    // An orange shirt looks most like the catalog's shirts.
    expect(byId.get(photo[0][2])!.shape).toBe('shirt');
    const more = lines.find((l) => l.startsWith('more like '))!.split(' ');
    expect(more[2]).toBe(photo[0][2]);
    const neighbours = more.slice(3);
    expect(neighbours).toHaveLength(DEFAULT_K);
    expect(neighbours).not.toContain(more[2]);
    expect(lines).toContain('error ITEM_NOT_FOUND 404');
  });

  it('adds the items put into the catalog folder when run again', async () => {
    await makeCatalog(items, { dir: path.join(work, 'catalog') });
    const lines = await runExample();
    expect(lines[0]).toBe('indexed: 4 added, 0 removed, 16 in the index');
    const neighbours = lines.find((l) => l.startsWith('more like '))!.split(' ').slice(3);
    expect(neighbours).toHaveLength(DEFAULT_K);
  });
});
