/**
 * Rebuilds demo/catalog/ from the dev catalog: 300 products with the same share of every
 * articleType as the whole catalog (stable hash of the id, so always the same 300), their
 * styles.csv rows as they are, their photos byte for byte. Run from the repository root:
 *
 *   npx tsx demo/make-catalog.ts [../shared/datasets/fashion-small]
 *
 * The result is committed; `lookalike demo` serves it. Nothing here runs at install time.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readCatalog } from '../src/catalog/index.js';
import { SAMPLE_STRATA } from '../src/defaults.js';
import { devCatalogDir, PACKAGE_ROOT } from '../src/paths.js';
import { stratifiedSample } from '../src/catalog/sample.js';

const DEMO_SIZE = 300;
const source = path.resolve(process.argv[2] ?? devCatalogDir());
const target = path.join(PACKAGE_ROOT, 'demo', 'catalog');

const catalog = await readCatalog(source);
const withPhoto = catalog.items.filter((i) => !/^https?:/.test(i.imagePath));
const chosen = new Set(stratifiedSample(withPhoto.map((i) => ({ id: i.id, value: i.metadata[SAMPLE_STRATA] ?? '' })), DEMO_SIZE));

// The original lines, header first, in the catalog's order: no field is re-quoted or changed.
const lines = readFileSync(path.join(source, 'styles.csv'), 'utf8').split(/\r?\n/);
const kept = [lines[0], ...lines.slice(1).filter((line) => chosen.has(line.slice(0, line.indexOf(','))))];
if (kept.length - 1 !== chosen.size) throw new Error(`found ${kept.length - 1} rows for ${chosen.size} ids (a multi-line row?)`);

rmSync(path.join(target, 'images'), { recursive: true, force: true });
mkdirSync(path.join(target, 'images'), { recursive: true });
writeFileSync(path.join(target, 'styles.csv'), `${kept.join('\n')}\n`);
for (const item of withPhoto) {
  if (chosen.has(item.id)) copyFileSync(item.imagePath, path.join(target, 'images', path.basename(item.imagePath)));
}
console.log(`demo/catalog: ${chosen.size} products of ${new Set(withPhoto.filter((i) => chosen.has(i.id)).map((i) => i.metadata[SAMPLE_STRATA])).size} articleTypes from ${source}`);
