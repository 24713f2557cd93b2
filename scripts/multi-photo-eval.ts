/**
 * One photo per product against two (docs/products.md, "Several photos per product"): the
 * first N products of the dev catalog (styles.csv order), each with its packshot, indexed;
 * then each given a second photo, a changed copy from the robustness generator
 * (eval/perturb.ts), added to a copy of that index (incremental indexing: the packshots are
 * not embedded again, the int8 model is the same). The query is a third photo of the
 * product, another change of its packshot. Prints recall@1/@10 of the very product, index
 * size, indexing time and query latency side by side, and how other ways of scoring a
 * product from its photos' cosines would have done, hubness-corrected ones among them.
 *
 *   npx tsx scripts/multi-photo-eval.ts OUT [--products 1000] [--from 0]
 *
 * --from F measures products F..F+N-1 instead (a second sample: a gain seen on one sample of
 * products is not believed until another shows it too).
 *
 * Product i's second photo is change PERTURBATIONS[i % 6], its query PERTURBATIONS[(i + 3) % 6]:
 * never the same change, every change as often.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { buildIndex } from '../src/indexing/build.js';
import { readCatalog } from '../src/catalog/index.js';
import { Lookalike } from '../src/lookalike.js';
import { devCatalogDir } from '../src/paths.js';
import { perturbPhoto, PERTURBATIONS, type Perturbation } from '../src/photo/synthetic.js';
import { dotAt } from '../src/math/linalg.js';

const out = path.resolve(process.argv[2] ?? 'multi-photo');
const at = process.argv.indexOf('--products');
const n = at > 0 ? Number(process.argv[at + 1]) : 1000;
const fromAt = process.argv.indexOf('--from');
const from = fromAt > 0 ? Number(process.argv[fromAt + 1]) : 0;
if (!Number.isInteger(n) || n < 1 || !Number.isInteger(from) || from < 0) throw new Error('--products must be a positive integer and --from a non-negative one');
const catalogDir = path.join(out, 'catalog');
const queriesDir = path.join(out, 'queries');
const oneDir = path.join(out, 'index-one');
const twoDir = path.join(out, 'index-two');
const secondOf = (i: number): Perturbation => PERTURBATIONS[i % PERTURBATIONS.length];
const queryOf = (i: number): Perturbation => PERTURBATIONS[(i + 3) % PERTURBATIONS.length];

const cpu = readFileSync('/proc/cpuinfo', 'utf8');
const cpuName = /model name\s*:\s*(.*)/.exec(cpu)?.[1] ?? 'unknown';
const vnni = cpu.split('\n').filter((l) => l.startsWith('flags') && l.includes('vnni')).length;
console.log(`CPU: ${cpuName} x${os.cpus().length} (lines with vnni: ${vnni}); load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} at start: a shared machine, timings are under load`);

const dev = await readCatalog(devCatalogDir());
const products = dev.items.slice(from, from + n);
rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(catalogDir, 'images'), { recursive: true });
mkdirSync(queriesDir, { recursive: true });
writeFileSync(path.join(catalogDir, 'styles.csv'), stringify([['id', ...dev.columns], ...products.map((p) => [p.id, ...dev.columns.map((c) => p.metadata[c] ?? '')])]));
for (const p of products) copyFileSync(p.imagePath, path.join(catalogDir, 'images', `${p.id}.jpg`));
// The products drawn beside one in a "clutter" photo come from outside the measured ones: a
// catalog photo of product i holding product j's packshot would be a photo of j too (a first
// run drew them from the measured products and lost 17 points of recall@1 to exactly that).
const outside = dev.items.slice(from + n, from + n + 300);
if (products.length < n || outside.length < 3) throw new Error(`the dev catalog needs at least ${from + n + 3} products for --products ${n} --from ${from}`);
const others = (i: number) => [1, 2, 3].map((d) => outside[(i * 3 + d) % outside.length].imagePath);
for (const [i, p] of products.entries()) writeFileSync(path.join(queriesDir, `${p.id}.jpg`), await perturbPhoto(p.imagePath, queryOf(i), 1000 + i, others(i)));

const folderBytes = (dir: string): number => readdirSync(dir).reduce((s, f) => s + statSync(path.join(dir, f)).size, 0);
const indexRun = async (dir: string) => {
  const t0 = performance.now();
  const report = await buildIndex({ catalogDir, indexDir: dir, search: 'exact' });
  return { seconds: (performance.now() - t0) / 1000, embedded: report.added };
};

const one = await indexRun(oneDir);
cpSync(oneDir, twoDir, { recursive: true });
for (const [i, p] of products.entries()) writeFileSync(path.join(catalogDir, 'images', `${p.id}_2.jpg`), await perturbPhoto(p.imagePath, secondOf(i), 2000 + i, others(i)));
const two = await indexRun(twoDir);

const A = await Lookalike.open(oneDir, { readonly: true });
const B = await Lookalike.open(twoDir, { readonly: true });
if (JSON.stringify(A.manifest.calibration) !== JSON.stringify(B.manifest.calibration)) throw new Error('the two indexes embed with different models');
await A.warmUp();
await B.warmUp();

interface Tally { at1: number; at10: number; ms: number[] }
const tally = (): Tally => ({ at1: 0, at10: 0, ms: [] });
const results = { one: tally(), two: tally() };
const aggregates: Record<string, { at1: number; at10: number }> = {};
const matchedSecond = { count: 0 };
const embedMs: number[] = [];
const cosines: number[][][] = []; // per query, per product, per photo
const space = B.photoSpace();
const { data, dim } = B.indexView().matrix(space);
const rowsOf = products.map((p) => B.photos.photos(p.id)?.rows ?? []);
const embed = A.embedImage.bind(A);

// Hubness (docs/products.md, "Aggregates against hubness"): a photo close to many photos of
// other products wins queries that are not its product's. CSLS-style, each photo's hub score
// r is the mean cosine to its K nearest photos of other products, computed once over the
// catalog's photo matrix (the query's own term is the same for every product: left out).
const HUB_K = 10;
const productOfRow = new Int32Array(B.indexView().size).fill(-1);
for (const [j, rows] of rowsOf.entries()) for (const r of rows) productOfRow[r] = j;
// Each photo's K nearest photos of other products (row and cosine), among `rows`.
const nearestOthers = (rows: number[]): Map<number, { row: number; cos: number }[]> => {
  const near = new Map<number, { row: number; cos: number }[]>();
  for (const r of rows) {
    const v = data.subarray(r * dim, (r + 1) * dim);
    near.set(r, rows.filter((o) => productOfRow[o] !== productOfRow[r]).map((o) => ({ row: o, cos: dotAt(data, o * dim, v, dim) })).sort((a, b) => b.cos - a.cos).slice(0, HUB_K));
  }
  return near;
};
const hubScores = (rows: number[]): Map<number, number> =>
  new Map([...nearestOthers(rows)].map(([r, near]) => [r, near.reduce((a, o) => a + o.cos, 0) / Math.max(1, near.length)]));
const neighboursAll = nearestOthers(rowsOf.flat());
const hubAll = new Map([...neighboursAll].map(([r, near]) => [r, near.reduce((a, o) => a + o.cos, 0) / Math.max(1, near.length)]));
// For a fair first-photo baseline: the first photos' hub scores among first photos alone.
const hubFirst = hubScores(rowsOf.map((rows) => rows[0]));
const hubOf = (hub: Map<number, number>, r: number) => hub.get(r) ?? 0;
const meanHub = (rows: number[]) => rows.reduce((a, r) => a + hubOf(hubAll, r), 0) / rows.length;
const firstRows = rowsOf.map((rows) => rows[0]);
const extraRows = rowsOf.flatMap((rows) => rows.slice(1));
// Each slot's mean hub score, so that centring after CSLS centres the corrected scores.
const slotHub = (k: number) => meanHub(rowsOf.filter((rows) => rows.length > k).map((rows) => rows[k]));
const slotHubs = Array.from({ length: Math.max(...rowsOf.map((rows) => rows.length)) }, (_, k) => slotHub(k));
console.log(`hub score r (mean cosine to the ${HUB_K} nearest photos of other products): first photos ${meanHub(firstRows).toFixed(3)}, second photos ${meanHub(extraRows).toFixed(3)} on average`);

for (const p of products) {
  const file = path.join(queriesDir, `${p.id}.jpg`);
  const t0 = performance.now();
  const raw = await embed(file);
  embedMs.push(performance.now() - t0);
  // The same photo's vectors for both indexes (one model): the timings below are the search's.
  for (const [name, L] of [['one', A], ['two', B]] as const) {
    L.embedImage = (async () => raw) as typeof L.embedImage;
    const t1 = performance.now();
    const { results: hits } = await L.searchByImage(file, { k: 10 });
    results[name].ms.push(performance.now() - t1);
    const place = hits.findIndex((h) => h.id === p.id);
    if (place === 0) results[name].at1++;
    if (place >= 0) results[name].at10++;
    if (name === 'two' && place >= 0 && hits[place].photo?.index === 1) matchedSecond.count++;
  }
  // Other aggregates of a product's photo cosines, exact, without the search's expansion:
  // scored after all queries (the query-bank variants need every query's cosines).
  const q = space.embed(raw);
  cosines.push(rowsOf.map((rows) => rows.map((r) => dotAt(data, r * dim, q, dim))));
}
// Kept beside the indexes so that other aggregates can be tried without embedding again.
writeFileSync(path.join(out, 'cosines.json'), JSON.stringify({ products: products.map((p) => p.id), rows: rowsOf, cosines }));

// Query-bank variants (transductive here: the bank is this run's queries, each photo's
// statistics taken over the queries of *other* products; a shop would keep past queries).
const bank = rowsOf.map((rows, j) => rows.map((_, k) => {
  const xs = cosines.filter((_, i) => i !== j).map((c) => c[j][k]);
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) || 1;
  const top = [...xs].sort((a, b) => b - a).slice(0, HUB_K);
  return { mean, sd, hub: top.reduce((a, b) => a + b, 0) / top.length };
}));

for (const [i, scored] of cosines.entries()) {
  // Each way scores product j from its photos' cosines scored[j] (rows rowsOf[j], first photo first).
  const rank = (score: (s: number[], j: number) => number) => {
    const mine = score(scored[i], i);
    let better = 0;
    for (let j = 0; j < scored.length; j++) if (j !== i && score(scored[j], j) > mine) better++;
    return better;
  };
  const max = (s: number[]) => Math.max(...s);
  // Local contrast: how much closer the query is to photo p than to p's K nearest photos of
  // other products (a query painted like p's neighbourhood comes close to all of it alike).
  const cosOfRow = new Map<number, number>();
  for (const [j, rows] of rowsOf.entries()) for (const [k, r] of rows.entries()) cosOfRow.set(r, scored[j][k]);
  const nearMean = (r: number) => { const near = neighboursAll.get(r) ?? []; return near.reduce((a, o) => a + (cosOfRow.get(o.row) ?? 0), 0) / Math.max(1, near.length); };
  const contrast = (beta: number) => (s: number[], j: number) => max(s.map((c, k) => c - beta * nearMean(rowsOf[j][k])));
  const csls = (beta: number) => (s: number[], j: number) => max(s.map((c, k) => c - beta * hubOf(hubAll, rowsOf[j][k])));
  // Per photo slot (first photo, second photo, ...) this query's mean and spread of cosines
  // over the catalog: a query painted like the second photos lifts every second photo alike.
  const slotStats = slotHubs.map((_, k) => {
    const xs = scored.filter((s) => s.length > k).map((s) => s[k]);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length) || 1;
    return { mean, sd };
  });
  const ways: Record<string, (s: number[], j: number) => number> = {
    'first photo only': (s) => s[0],
    'first photo only, CSLS beta 1 (r among first photos)': (s, j) => s[0] - hubOf(hubFirst, rowsOf[j][0]),
    'max (what searches do)': max,
    mean: (s) => s.reduce((a, b) => a + b, 0) / s.length,
    'max + 0.5 x second best': (s) => { const t = [...s].sort((a, b) => b - a); return t[0] + 0.5 * (t[1] ?? t[0]); },
    'max, CSLS beta 0.5': csls(0.5),
    'max, CSLS beta 1': csls(1),
    'max, slot-centred': (s) => max(s.map((c, k) => c - slotStats[k].mean + slotStats[0].mean)),
    'max, slot z-scored': (s) => max(s.map((c, k) => (c - slotStats[k].mean) / slotStats[k].sd)),
    'max, CSLS beta 1 then slot-centred': (s, j) => max(s.map((c, k) => c - hubOf(hubAll, rowsOf[j][k]) - (slotStats[k].mean - slotHubs[k]) + (slotStats[0].mean - slotHubs[0]))),
    'max, local contrast beta 0.5': contrast(0.5),
    'max, local contrast beta 1': contrast(1),
    'max, query-bank CSLS beta 1 (transductive)': (s, j) => max(s.map((c, k) => c - bank[j][k].hub)),
    'max, per-photo z over the query bank (transductive)': (s, j) => max(s.map((c, k) => (c - bank[j][k].mean) / bank[j][k].sd)),
  };
  for (const [name, way] of Object.entries(ways)) {
    const r = rank(way);
    aggregates[name] ??= { at1: 0, at10: 0 };
    if (r === 0) aggregates[name].at1++;
    if (r < 10) aggregates[name].at10++;
  }
}

const pct = (x: number) => `${((100 * x) / n).toFixed(1)}%`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)];
const info = (L: Lookalike) => ({ products: L.photos.products, photos: L.indexView().size });
console.log(`\n${n} products (rows ${from}-${from + n - 1} of ${devCatalogDir()}); query: a third photo, another change of the packshot (never the second photo's change)`);
console.log('| | one photo per product | two photos per product |');
console.log('|---|---|---|');
console.log(`| products / photos indexed | ${info(A).products} / ${info(A).photos} | ${info(B).products} / ${info(B).photos} |`);
console.log(`| recall@1 of the very product | ${pct(results.one.at1)} | ${pct(results.two.at1)} |`);
console.log(`| recall@10 | ${pct(results.one.at10)} | ${pct(results.two.at10)} |`);
console.log(`| index folder size | ${(folderBytes(oneDir) / 1e6).toFixed(1)} MB | ${(folderBytes(twoDir) / 1e6).toFixed(1)} MB |`);
console.log(`| indexing time | ${one.seconds.toFixed(0)} s (${one.embedded} photos) | ${one.seconds.toFixed(0)} s + ${two.seconds.toFixed(0)} s (${two.embedded} second photos, incremental) |`);
console.log(`| search after embedding, median / p95 | ${median(results.one.ms).toFixed(1)} / ${p95(results.one.ms).toFixed(1)} ms | ${median(results.two.ms).toFixed(1)} / ${p95(results.two.ms).toFixed(1)} ms |`);
console.log(`| embedding the query (same for both), median | ${median(embedMs).toFixed(0)} ms | ${median(embedMs).toFixed(0)} ms |`);
console.log(`\nTwo photos: the very product, when in the top 10, was found by its second (changed) photo for ${matchedSecond.count} of ${results.two.at10}.`);
console.log('\nScoring a product from its photos\' cosines (exact, no expansion), two-photo index:');
console.log('| aggregate | recall@1 | recall@10 |');
console.log('|---|---|---|');
for (const [name, a] of Object.entries(aggregates)) console.log(`| ${name} | ${pct(a.at1)} | ${pct(a.at10)} |`);
console.log(`\nload average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
await A.close();
await B.close();
if (!existsSync(out)) process.exit(1);
