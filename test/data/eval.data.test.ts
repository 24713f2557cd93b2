/**
 * The must-show check of evaluation: `lookalike eval` on a 1,000-item dev index gives the
 * same articleType precision@5 as a plain, independent computation from the exported
 * embeddings CSV (leave-one-out, cosine, full sort), within 0.001.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/fixtures.js';
import { DEV_INDEX_SIZE, HAS_DEV_CATALOG, devIndex } from './dev-index.js';

/** Straightforward leave-one-out precision@k from rows of numbers: no shared code with src/eval. */
function independentPrecisionAtK(vectors: number[][], labels: string[], k: number): number {
  const norms = vectors.map((v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0)));
  let sum = 0, queries = 0;
  for (let i = 0; i < vectors.length; i++) {
    if (!labels[i]) continue;
    const scored: Array<{ j: number; cosine: number }> = [];
    for (let j = 0; j < vectors.length; j++) {
      if (j === i) continue;
      let dot = 0;
      for (let t = 0; t < vectors[i].length; t++) dot += vectors[i][t] * vectors[j][t];
      scored.push({ j, cosine: dot / (norms[i] * norms[j]) });
    }
    scored.sort((a, b) => b.cosine - a.cosine);
    sum += scored.slice(0, k).filter((s) => labels[s.j] === labels[i]).length / k;
    queries++;
  }
  return sum / queries;
}

describe.skipIf(!HAS_DEV_CATALOG)('evaluation on the dev catalog', () => {
  it('reports the articleType precision@5 that an independent computation from the exported CSV gives', async () => {
    const index = await devIndex();
    const evalRun = runCli(['eval', '--index', index, '--attr', 'articleType', '-k', '5', '--json']);
    expect(evalRun.code, evalRun.stderr).toBe(0);
    const result = JSON.parse(evalRun.stdout) as { items: number; attributes: Array<{ attribute: string; precisionAtK: number; queries: number }> };
    expect(result.items).toBe(DEV_INDEX_SIZE);
    const reported = result.attributes.find((a) => a.attribute === 'articleType')!.precisionAtK;

    const dir = tempDir('lookalike-eval-data-');
    const embeddings = path.join(dir, 'embeddings.csv');
    const metadata = path.join(dir, 'metadata.csv');
    const exported = runCli(['export', '--index', index, '--embeddings', embeddings, '--metadata', metadata]);
    expect(exported.code, exported.stderr).toBe(0);
    const embRows = parse(readFileSync(embeddings), { columns: true }) as Array<Record<string, string>>;
    const metaRows = parse(readFileSync(metadata), { columns: true }) as Array<Record<string, string>>;
    const labelOf = new Map(metaRows.map((r) => [r.id, r.articleType.trim()]));
    const vectors = embRows.map((r) => Object.keys(r).filter((c) => c !== 'id').map((c) => Number(r[c])));
    const labels = embRows.map((r) => labelOf.get(r.id) ?? '');
    expect(vectors).toHaveLength(DEV_INDEX_SIZE);
    expect(vectors[0]).toHaveLength(2048);

    const independent = independentPrecisionAtK(vectors, labels, 5);
    console.log(`articleType precision@5 on ${vectors.length} items: eval ${reported.toFixed(5)}, independent ${independent.toFixed(5)}`);
    expect(Math.abs(reported - independent)).toBeLessThan(0.001);
    expect(reported).toBeGreaterThan(0.3);
  });

  it('writes a report folder for the dev index', async () => {
    const index = await devIndex();
    const report = path.join(tempDir('lookalike-eval-report-'), 'report');
    const r = runCli(['eval', '--index', index, '--report', report]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/articleType\s+1000/);
    expect(r.stdout).toMatch(/evaluated 1000 queries in [\d.]+ s/);
    for (const f of ['index.html', 'metrics.csv', 'per-class-articleType.csv', 'confusion-articleType.csv', 'charts/category-articleType.png']) {
      expect(readFileSync(path.join(report, f)).length, f).toBeGreaterThan(100);
    }
  });
});
