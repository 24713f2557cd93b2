/**
 * The tuning report: the sweeps as tables (terminal, CSV, HTML) and as curves, so that
 * the trade-off between quality, speed and memory is visible at a glance.
 */
import { writeHtmlReport, type ReportSection, type ReportTable, type WrittenReport } from '../eval/report.js';
import { lineChart, scoreHistogramChart, tradeOffChart } from '../viz/charts.js';
import type { TuneResult } from './tune.js';

const mb = (bytes: number) => Math.round((bytes / 1e6) * 10) / 10;

export function vectorTable(r: TuneResult, onlyCompareK = false): ReportTable {
  const a = r.attribute;
  const others = r.attributes.filter((x) => x !== a);
  return {
    caption: `Stored-vector settings (${r.queries === r.items ? 'every item' : `${r.queries} sampled query items`} against all ${r.items})`,
    header: ['pooling', 'dims', 'k', `${a} p@1`, `${a} p@k`, `${a} mAP@k`, `${a} kNN acc`, `${a} macro-F1`, ...others.map((o) => `${o} p@k`), 'search ms', 'matrix MB'],
    rows: r.vector.filter((v) => !onlyCompareK || v.k === r.compareK).map((v) => [
      v.pooling, v.dims, v.k,
      v.metrics[a].precisionAt1, v.metrics[a].precisionAtK, v.metrics[a].mapAtK, v.metrics[a].knnAccuracy, v.metrics[a].macroF1,
      ...others.map((o) => v.metrics[o].precisionAtK),
      Math.round(v.searchMs * 100) / 100, mb(v.matrixBytes),
    ]),
    csv: 'tune-vectors',
  };
}

export function imageTable(r: TuneResult): ReportTable | undefined {
  if (!r.image?.rows.length) return undefined;
  const a = r.attribute;
  const others = r.attributes.filter((x) => x !== a);
  return {
    caption: `Image settings, each re-embedding a stratified sample of ${r.image.sample} items (quality measured within the sample: compare rows with each other, not with the full index)`,
    header: ['input (WxH)', 'resize', 'current', 'relative cost', `${a} p@1`, `${a} p@${r.compareK}`, `${a} mAP@${r.compareK}`, ...others.map((o) => `${o} p@${r.compareK}`), 'images/s', 'query ms', 'matrix MB (catalog)'],
    rows: r.image.rows.map((x) => [
      `${x.width}x${x.height}`, x.resize, x.current ? 'yes' : '', Math.round(x.relativeCost * 100) / 100,
      x.metrics[a].precisionAt1, x.metrics[a].precisionAtK, x.metrics[a].mapAtK,
      ...others.map((o) => x.metrics[o].precisionAtK),
      Math.round(x.imagesPerSecond * 10) / 10, Math.round(x.queryMs), mb(x.matrixBytes),
    ]),
    csv: 'tune-images',
  };
}

export function bestLines(r: TuneResult, rebuild?: string): string[] {
  const t = r.threshold;
  const lines = [
    `pooling: ${r.best.pooling} (${r.attribute} precision@${r.compareK} on the full index)`,
    r.best.k > r.compareK
      ? `k: ${r.best.k} (the largest k in ${r.ks.join(', ')} whose ${r.attribute} precision@k reaches ${r.targetPrecision})`
      : `k: ${r.best.k} (no larger k in ${r.ks.join(', ')} keeps ${r.attribute} precision@k at ${r.targetPrecision}; the threshold holds precision instead)`,
    t.suggested === undefined
      ? `threshold: none reaches ${r.targetPrecision} precision of kept neighbours; keep no threshold or lower the target`
      : `threshold: ${t.suggested.toFixed(4)} (keeps ${(100 * (t.keptAtSuggested ?? 0)).toFixed(1)}% of the top-${t.k} neighbours, ${(100 * (t.precisionAtSuggested ?? 0)).toFixed(1)}% of them the same ${t.attribute})`,
  ];
  if (r.best.image) {
    const { best, cheapest } = r.best.image;
    const d = (x: typeof best) => `${x.width}x${x.height} ${x.resize} (${r.attribute} p@${r.compareK} ${x.metrics[r.attribute].precisionAtK.toFixed(3)} on the sample, ${x.imagesPerSecond.toFixed(1)} images/s)`;
    lines.push(`image settings (sample of ${r.image!.sample}): best ${d(best)}; cheapest within 0.01 of it: ${d(cheapest)}`);
    if (rebuild) lines.push(`  image settings need re-embedding: ${rebuild}`);
  } else if (r.image?.skipped) {
    lines.push(`image settings: skipped: ${r.image.skipped}`);
  }
  return lines;
}

export async function writeTuneReport(dir: string, r: TuneResult, rebuild?: string): Promise<WrittenReport> {
  const a = r.attribute;
  const k = r.compareK;
  const sections: ReportSection[] = [];
  sections.push({
    title: 'Suggested settings',
    notes: [
      ...bestLines(r, rebuild),
      `Pooling, embedding size (PCA fitted on the catalog), k and the threshold were swept on the stored vectors of the whole index (${r.items} items; ${r.queries} query items, each searching all others). ` +
      (r.image?.rows.length ? `Input size and resize mode need re-embedding and were swept on a stratified sample of ${r.image.sample} items: their figures come from that sample only.` : ''),
      `Took ${r.seconds.total.toFixed(0)} s (stored vectors ${r.seconds.vector.toFixed(0)} s, image settings ${r.seconds.image.toFixed(0)} s).`,
    ],
  });
  const dimsSeries = r.vector.filter((v) => v.k === k).map((v) => ({ x: v.dims, y: v.metrics[a].precisionAtK, series: `${v.pooling} pooling` }));
  const kSeries = r.vector.filter((v) => v.dims === Math.max(...r.vector.map((x) => x.dims)))
    .flatMap((v) => [
      { x: v.k, y: v.metrics[a].precisionAtK, series: 'precision@k', dash: `${v.pooling} pooling` },
      { x: v.k, y: v.metrics[a].mapAtK, series: 'mAP@k', dash: `${v.pooling} pooling` },
      { x: v.k, y: v.metrics[a].knnAccuracy, series: 'kNN accuracy', dash: `${v.pooling} pooling` },
    ]);
  const speed = r.vector.filter((v) => v.k === k).map((v) => ({ x: v.searchMs, y: v.metrics[a].precisionAtK, label: `${v.dims}-d`, group: `${v.pooling} pooling` }));
  sections.push({
    title: 'Pooling, embedding size and k (whole index)',
    charts: [
      lineChart('tune-precision-vs-dims', `${a} precision@${k} against embedding size`, dimsSeries, { x: 'dimensions (PCA)', y: `precision@${k}`, xLog: true }),
      lineChart('tune-precision-vs-k', `${a} quality against k (full size)`, kSeries, { x: 'k', y: 'score', xLog: false }),
      tradeOffChart('tune-quality-vs-search', `${a} precision@${k} against search time per query`, speed, { x: 'exact search over the index, ms per query', y: `precision@${k}` }),
    ],
    tables: [vectorTable(r)],
  });
  const t = r.threshold;
  sections.push({
    title: 'Similarity threshold',
    notes: [`Scores of the top-${t.k} neighbours (${t.pooling} pooling) whose ${t.attribute} matches the query's (${t.same}) or not (${t.different}). The suggested threshold is the lowest at which at least ${(t.target * 100).toFixed(0)}% of the neighbours kept share the query's ${t.attribute}.`],
    charts: [
      scoreHistogramChart('tune-threshold-histogram', `${t.attribute}: similarity of same- and different-class neighbours`, t.histogram, t.suggested),
      lineChart('tune-threshold-curve', 'Kept neighbours against threshold', t.curve.flatMap((p) => [
        { x: p.threshold, y: p.precision, series: 'precision of kept' },
        { x: p.threshold, y: p.kept, series: 'share kept' },
      ]), { x: 'threshold (cosine)', y: 'share', yDomain: [0, 1] }),
    ],
    tables: [{ header: ['threshold', 'precision of kept', 'share kept'], rows: t.curve.map((p) => [p.threshold, p.precision, p.kept]), csv: 'tune-threshold' }],
  });
  const images = imageTable(r);
  if (images && r.image) {
    sections.push({
      title: `Image settings (sample of ${r.image.sample} items)`,
      notes: ['Each setting re-embeds the same stratified sample into a temporary index. Quality is measured within the sample (fewer neighbours to find than in the whole catalog), so compare these rows with each other only.'],
      charts: [
        tradeOffChart('tune-quality-vs-speed', `${a} precision@${k} against indexing speed (sample)`, r.image.rows.map((x) => ({ x: x.imagesPerSecond, y: x.metrics[a].precisionAtK, label: `${x.width}x${x.height} ${x.resize}`, group: x.resize })), { x: 'images per second (indexing)', y: `precision@${k}` }),
      ],
      tables: [images],
    });
  } else if (r.image?.skipped) {
    sections.push({ title: 'Image settings', notes: [`Skipped: ${r.image.skipped}.`] });
  }
  return writeHtmlReport(dir, { title: 'Lookalike: tuning', subtitle: [`index: ${r.index}`, `generated ${new Date().toISOString()}`], sections });
}
