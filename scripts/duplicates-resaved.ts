/**
 * How close a re-uploaded photo stays to its original once both are in an index
 * (docs/products.md): a catalog of N dev-catalog photos (stratified by articleType) and,
 * under new ids, each of them re-saved (JPEG quality 70), enlarged 1.5x, both, or with 2%
 * cropped off each side; indexed as any catalog is; then the cosine of each changed
 * photo's stored vector with its original's.
 *
 *   npx tsx scripts/duplicates-resaved.ts OUT [--photos 100]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { stringify } from 'csv-stringify/sync';
import { buildIndex } from '../src/indexing/build.js';
import { readCatalog } from '../src/catalog/index.js';
import { Lookalike } from '../src/lookalike.js';
import { backboneSpace } from '../src/search/space.js';
import { dotAt } from '../src/math/linalg.js';
import { devCatalogDir } from '../src/paths.js';
import { SAMPLE_STRATA } from '../src/defaults.js';
import { stratifiedSample } from '../src/catalog/sample.js';

const out = path.resolve(process.argv[2] ?? 'resaved-catalog');
const at = process.argv.indexOf('--photos');
const photos = at > 0 ? Number(process.argv[at + 1]) : 100;
const changes: Record<string, (b: Buffer) => Promise<Buffer>> = {
  'JPEG quality 70': (b) => sharp(b).jpeg({ quality: 70 }).toBuffer(),
  'enlarged 1.5x': async (b) => { const m = await sharp(b).metadata(); return sharp(b).resize(Math.round(m.width! * 1.5), Math.round(m.height! * 1.5)).jpeg({ quality: 90 }).toBuffer(); },
  'enlarged 1.5x, quality 70': async (b) => { const m = await sharp(b).metadata(); return sharp(b).resize(Math.round(m.width! * 1.5), Math.round(m.height! * 1.5)).jpeg({ quality: 70 }).toBuffer(); },
  '2% cropped off each side': async (b) => { const m = await sharp(b).metadata(); const dx = Math.round(m.width! * 0.02), dy = Math.round(m.height! * 0.02); return sharp(b).extract({ left: dx, top: dy, width: m.width! - 2 * dx, height: m.height! - 2 * dy }).jpeg({ quality: 90 }).toBuffer(); },
};

const dev = await readCatalog(devCatalogDir());
const chosen = new Set(stratifiedSample(dev.items.map((i) => ({ id: i.id, value: i.metadata[SAMPLE_STRATA] ?? '' })), photos));
mkdirSync(path.join(out, 'catalog', 'images'), { recursive: true });
const rows: string[][] = [['id', 'original', 'change']];
for (const item of dev.items.filter((i) => chosen.has(i.id))) {
  const bytes = readFileSync(item.imagePath);
  writeFileSync(path.join(out, 'catalog', 'images', `${item.id}.jpg`), bytes);
  rows.push([item.id, item.id, 'original']);
  for (const [c, [name, change]] of Object.entries(changes).entries()) {
    const id = `${item.id}-${c + 1}`;
    writeFileSync(path.join(out, 'catalog', 'images', `${id}.jpg`), await change(bytes));
    rows.push([id, item.id, name]);
  }
}
writeFileSync(path.join(out, 'catalog', 'styles.csv'), stringify(rows));
const indexDir = path.join(out, 'index');
await buildIndex({ catalogDir: path.join(out, 'catalog'), indexDir });
const lookalike = await Lookalike.open(indexDir);
try {
  const space = backboneSpace(lookalike.settings.pooling, lookalike.manifest.dimension);
  const scores: Record<string, number[]> = Object.fromEntries(Object.keys(changes).map((k) => [k, []]));
  for (const item of lookalike.indexView().items) {
    const { original, change } = item.metadata;
    if (change === 'original' || !lookalike.has(original)) continue;
    scores[change].push(dotAt(lookalike.indexView().vectorOf(space, item.id), 0, lookalike.indexView().vectorOf(space, original), space.dim));
  }
  console.log(`${chosen.size} dev-catalog photos and their changed copies, indexed: cosine of each copy's stored vector with its original's (${space.id})`);
  console.log('change | min | 5th percentile | median | share >= 0.95 | >= 0.97 | >= 0.98');
  for (const [name, list] of Object.entries(scores)) {
    const s = [...list].sort((a, b) => a - b);
    const share = (t: number) => (s.filter((x) => x >= t).length / s.length).toFixed(2);
    console.log(`${name} | ${s[0].toFixed(4)} | ${s[Math.floor(s.length * 0.05)].toFixed(4)} | ${s[Math.floor(s.length / 2)].toFixed(4)} | ${share(0.95)} | ${share(0.97)} | ${share(0.98)}`);
  }
} finally {
  await lookalike.close();
}
