/** An evaluation report (eval/report.ts) written for a small synthetic catalog, for the tests of the report's folder and of the report in a browser. */
import { evaluate, findNeighbours, neighbourScores } from '../../src/lab/eval/evaluate.js';
import { writeEvalReport } from '../../src/lab/eval/report.js';
import { scoreHistogram } from '../../src/math/stats.js';
import { normaliseRows } from '../../src/search/kernel.js';
import { Random } from '../../src/math/random.js';
import { tempDir } from './fixtures.js';

/** A small synthetic catalog: clustered vectors, labels, and a 2-D map of the clusters. */
function synthetic(n = 360, dim = 32, classes = 6) {
  const rng = new Random(7);
  const centres = Array.from({ length: classes }, () => Float32Array.from({ length: dim }, () => rng.normal()));
  const names = ['Tshirts', 'Shirts', 'Watches', 'Casual Shoes', 'Handbags', 'Kurtas'];
  const colours = ['Black', 'White', 'Blue', 'Red'];
  const data = new Float32Array(n * dim);
  const articleType: string[] = [], baseColour: string[] = [], masterCategory: string[] = [];
  const points: Array<{ x: number; y: number }> = [];
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    for (let j = 0; j < dim; j++) data[i * dim + j] = centres[c][j] + 1.2 * rng.normal();
    articleType.push(names[c]);
    baseColour.push(colours[(i * 7) % 4]);
    masterCategory.push(c === 2 || c === 4 ? 'Accessories' : c === 3 ? 'Footwear' : 'Apparel');
    points.push({ x: 10 * Math.cos(c) + rng.normal(), y: 10 * Math.sin(c) + rng.normal() });
  }
  return { data: normaliseRows(data, dim), dim, ids: articleType.map((_, i) => String(5000 + i)), labels: { articleType, masterCategory, baseColour }, points };
}

const counts = (values: string[]) => [...values.reduce((m, v) => m.set(v, (m.get(v) ?? 0) + 1), new Map<string, number>())].map(([value, count]) => ({ value, count }));

/** Writes the report into a new temporary folder and returns the folder. */
export async function writeSyntheticEvalReport(): Promise<string> {
  const s = synthetic();
  const result = await evaluate({ matrix: s.data, dim: s.dim, ids: s.ids, labels: s.labels, k: 5 });
  const nb = await findNeighbours(s.data, s.dim, s.ids, 5);
  const { same, different } = neighbourScores(nb, s.labels.articleType);
  const reportDir = tempDir('lookalike-report-');
  await writeEvalReport(reportDir, {
    result,
    categories: { masterCategory: counts(s.labels.masterCategory), articleType: counts(s.labels.articleType), baseColour: counts(s.labels.baseColour) },
    scores: { attribute: 'articleType', histogram: scoreHistogram(same, different) },
    map: { points: s.points, values: s.labels.articleType, attribute: 'articleType' },
  });
  return reportDir;
}
