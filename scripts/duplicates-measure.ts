/**
 * The duplicates threshold of docs/products.md, measured on the catalog that
 * scripts/products-catalog.ts builds (it holds every dev-catalog photo that is byte for
 * byte another's, with its twin) once it is indexed:
 *
 *   npx tsx scripts/products-catalog.ts /tmp/pcat && npx lookalike index /tmp/pcat --index /tmp/pidx
 *   npx tsx scripts/duplicates-measure.ts /tmp/pcat /tmp/pidx [--sheet 0.97 sheet.png]
 *
 * Per threshold: the groups `lookalike duplicates` finds; how many hold only identical
 * files; how many join photos that differ, and of those how many differ only as a re-saved
 * photo does (mean absolute pixel difference at most PIXEL_SAME of 255 once both are
 * 60x80 greyscale); and the identical-file groups found whole (recall). --sheet draws the
 * groups with differing photos at that threshold as a contact sheet, to check by eye
 * (with --every: every n-th of all its groups, 24 in all).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { Lookalike } from '../src/lookalike.js';
import { DUPLICATE_NEIGHBOURS } from '../src/defaults.js';

const PIXEL_SAME = 4;
const [catalogDir, indexDir] = process.argv.slice(2);
const sheetAt = process.argv.indexOf('--sheet');
const exact: string[][] = JSON.parse(readFileSync(path.join(catalogDir, 'exact-duplicates.json'), 'utf8'));
const fileGroup = new Map<string, number>();
exact.forEach((ids, g) => ids.forEach((id) => fileGroup.set(id, g)));

const pixels = new Map<string, Buffer>();
async function grey(id: string): Promise<Buffer> {
  let p = pixels.get(id);
  if (!p) {
    p = await sharp(path.join(catalogDir, 'images', `${id}.jpg`)).resize(60, 80, { fit: 'fill' }).greyscale().raw().toBuffer();
    pixels.set(id, p);
  }
  return p;
}
async function meanAbsDiff(a: string, b: string): Promise<number> {
  const [pa, pb] = await Promise.all([grey(a), grey(b)]);
  let s = 0;
  for (let i = 0; i < pa.length; i++) s += Math.abs(pa[i] - pb[i]);
  return s / pa.length;
}

const lookalike = await Lookalike.open(indexDir);
try {
  const inIndex = exact.filter((ids) => ids.every((id) => lookalike.has(id)));
  console.log(`${lookalike.size} products; ${inIndex.length} groups of identical files (ground truth); neighbours ${DUPLICATE_NEIGHBOURS}; pixel-same: mean |difference| <= ${PIXEL_SAME}/255`);
  console.log('threshold | groups | products | only identical files | with differing photos | of those, pixel-same | identical-file groups found whole');
  const thresholds = [0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995];
  const differing = new Map<number, string[][]>();
  for (const threshold of thresholds) {
    const report = await lookalike.duplicates({ threshold });
    let onlyIdentical = 0, withDiffering = 0, pixelSame = 0;
    const found = new Set<number>();
    const mixed: string[][] = [];
    for (const g of report.groups) {
      const ids = g.items.map((i) => i.id);
      const groupsOfFiles = new Set(ids.map((id) => fileGroup.get(id) ?? `solo-${id}`));
      if (groupsOfFiles.size === 1) { onlyIdentical++; found.add(fileGroup.get(ids[0])!); continue; }
      for (const fg of groupsOfFiles) if (typeof fg === 'number' && exact[fg].every((id) => ids.includes(id))) found.add(fg);
      withDiffering++;
      mixed.push(ids);
      // Pixel-same: every member within PIXEL_SAME of the group's first.
      const diffs = await Promise.all(ids.slice(1).map((id) => meanAbsDiff(ids[0], id)));
      if (diffs.every((d) => d <= PIXEL_SAME)) pixelSame++;
    }
    differing.set(threshold, mixed);
    console.log(`${threshold} | ${report.groups.length} | ${report.duplicated} | ${onlyIdentical} | ${withDiffering} | ${pixelSame} | ${found.size}/${inIndex.length}`);
  }
  // Searches: more like each product of an identical-file group, top 10, with and without
  // dedupe; a result is a repeat when its file is the query's or a better result's.
  const repeats = async (dedupe: boolean) => {
    let total = 0, queries = 0;
    for (const ids of inIndex) {
      for (const id of ids) {
        const r = await lookalike.searchById(id, { k: 10, dedupe });
        const seen = new Set([fileGroup.get(id)]);
        for (const h of r.results) {
          const g = fileGroup.get(h.id);
          if (g !== undefined && seen.has(g)) total++;
          if (g !== undefined) seen.add(g);
        }
        queries++;
      }
    }
    return { perQuery: total / queries, queries };
  };
  const plain = await repeats(false), deduped = await repeats(true);
  console.log(`more like each of the ${plain.queries} products with an identical file, top 10: ${plain.perQuery.toFixed(2)} identical photos repeated per list plain, ${deduped.perQuery.toFixed(2)} with dedupe`);
  if (sheetAt > 0) {
    const threshold = Number(process.argv[sheetAt + 1]);
    const file = process.argv[sheetAt + 2];
    // --every: a sample of all groups (every n-th), else the groups joining differing photos.
    const every = process.argv.includes('--every');
    const all = every ? (await lookalike.duplicates({ threshold })).groups.map((g) => g.items.map((i) => i.id)) : [];
    const groups = every ? all.filter((_, i) => i % Math.max(1, Math.floor(all.length / 24)) === 0).slice(0, 24) : (differing.get(threshold) ?? []).slice(0, 24);
    const cell = { w: 60, h: 80 }, gap = 4, cols = Math.max(...groups.map((g) => g.length), 1);
    const width = cols * (cell.w + gap) + 40, height = groups.length * (cell.h + gap) + gap;
    const layers: OverlayOptions[] = [];
    for (const [r, ids] of groups.entries()) {
      const label = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="36" height="${cell.h}"><text x="2" y="44" font-size="16" font-family="sans-serif">${r + 1}</text></svg>`);
      layers.push({ input: label, left: 0, top: gap + r * (cell.h + gap) });
      for (const [c, id] of ids.slice(0, cols).entries()) {
        layers.push({ input: await sharp(path.join(catalogDir, 'images', `${id}.jpg`)).resize(cell.w, cell.h, { fit: 'contain', background: '#fff' }).toBuffer(), left: 40 + c * (cell.w + gap), top: gap + r * (cell.h + gap) });
      }
    }
    await sharp({ create: { width, height, channels: 3, background: '#ddd' } }).composite(layers).png().toFile(file);
    console.log(`${file}: ${groups.length} ${every ? 'groups (every n-th)' : 'groups with differing photos'} at ${threshold}`);
    groups.forEach((ids, i) => console.log(`${i + 1}: ${ids.map((id) => `${id} ${lookalike.item(id).metadata.productDisplayName}`).join(' | ')}`));
  }
} finally {
  await lookalike.close();
}
