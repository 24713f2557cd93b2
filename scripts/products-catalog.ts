/**
 * The measurement catalog of docs/products.md, built from the dev catalog into a folder
 * outside the project (never commit it):
 *  - a stratified sample of the dev catalog (the same share of every articleType);
 *  - every photo whose file is byte for byte the same as another's (the ground truth of
 *    `lookalike duplicates`), with its twin;
 *  - families of colour variants: products of one gender and articleType whose
 *    productDisplayName is the same once the colour words are taken out ("Fabindia Men
 *    Striped Green Shirt", "... Maroon Shirt"), 2 to 6 products and 2 colours at least,
 *    4 words at least once the colours are out. Each family's members share a `style_id`
 *    (a column added to styles.csv); every other product is its own style (empty cell).
 *
 *   npx tsx scripts/products-catalog.ts OUT [--sample 1800] [--families 150]
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { readCatalog } from '../src/catalog/index.js';
import { SAMPLE_STRATA } from '../src/defaults.js';
import { idHashUnit } from '../src/catalog/split.js';
import { devCatalogDir } from '../src/paths.js';
import { stratifiedSample } from '../src/catalog/sample.js';

const args = process.argv.slice(2);
const out = path.resolve(args[0] ?? 'products-catalog');
const option = (name: string, fallback: number) => { const i = args.indexOf(name); return i >= 0 ? Number(args[i + 1]) : fallback; };
const sampleSize = option('--sample', 1800);
const familyCount = option('--families', 150);

const source = devCatalogDir();
const catalog = await readCatalog(source);
const items = catalog.items.filter((i) => !/^https?:/.test(i.imagePath));

// Exact duplicates: the same bytes under two ids.
const byHash = new Map<string, string[]>();
for (const item of items) {
  const hash = createHash('sha256').update(readFileSync(item.imagePath)).digest('hex');
  byHash.set(hash, [...(byHash.get(hash) ?? []), item.id]);
}
const exactGroups = [...byHash.values()].filter((ids) => ids.length > 1);

// Colour variants: the name without its colour words.
const colourWords = new Set(items.flatMap((i) => (i.metadata.baseColour ?? '').toLowerCase().split(/[\s/-]+/).filter(Boolean)));
const families = new Map<string, typeof items>();
for (const item of items) {
  const words = (item.metadata.productDisplayName ?? '').toLowerCase().split(/\s+/).filter((w) => w && !colourWords.has(w));
  if (words.length < 4) continue;
  const key = `${item.metadata.gender}|${item.metadata.articleType}|${words.join(' ')}`;
  families.set(key, [...(families.get(key) ?? []), item]);
}
const chosenFamilies = [...families.entries()]
  .filter(([, members]) => members.length >= 2 && members.length <= 6 && new Set(members.map((m) => m.metadata.baseColour)).size >= 2)
  .sort((a, b) => idHashUnit(a[0]) - idHashUnit(b[0]) || a[0].localeCompare(b[0]))
  .slice(0, familyCount);
const styleOf = new Map<string, string>();
for (const [key, members] of chosenFamilies) {
  const style = `S${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
  for (const m of members) styleOf.set(m.id, style);
}

const chosen = new Set([
  ...stratifiedSample(items.map((i) => ({ id: i.id, value: i.metadata[SAMPLE_STRATA] ?? '' })), sampleSize),
  ...exactGroups.flat(),
  ...styleOf.keys(),
]);
mkdirSync(path.join(out, 'images'), { recursive: true });
const rows = items.filter((i) => chosen.has(i.id));
for (const item of rows) copyFileSync(item.imagePath, path.join(out, 'images', path.basename(item.imagePath)));
writeFileSync(path.join(out, 'styles.csv'), stringify([
  ['id', ...catalog.columns, 'style_id'],
  ...rows.map((i) => [i.id, ...catalog.columns.map((c) => i.metadata[c] ?? ''), styleOf.get(i.id) ?? '']),
]));
writeFileSync(path.join(out, 'exact-duplicates.json'), JSON.stringify(exactGroups));
console.log(`${out}: ${rows.length} products; ${exactGroups.length} groups of identical files (${exactGroups.flat().length} products); ${chosenFamilies.length} colour-variant families (${styleOf.size} products)`);
