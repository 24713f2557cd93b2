/**
 * The robustness report folder: tables per kind of shopper photo (CSV too), and a strip of
 * example queries with their top results under the default space, whole-photo pooling
 * beside localised pooling, so that a reader sees what the figures mean.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { escapeHtml, writeHtmlReport, type WrittenReport } from './report.js';
import { PERTURBATION_LABELS } from '../../photo/synthetic.js';
import type { RobustnessResult, RobustnessRow } from './robustness.js';
import type { Lookalike } from '../../lookalike.js';

export function robustnessTableRows(rows: RobustnessRow[]): Array<Array<string | number>> {
  return rows.map((r) => [
    r.kind === 'overall' ? 'overall' : PERTURBATION_LABELS[r.kind], r.spaceLabel, r.localise + (r.expanded ? ' + expansion' : ''), r.queries,
    r.recallAt1, r.recallAt10, r.precisionAt5,
  ]);
}

export const ROBUSTNESS_HEADER = ['kind', 'space', 'query', 'queries', 'recall@1', 'recall@10', 'precision@5 (others)'];

export async function writeRobustnessReport(dir: string, result: RobustnessResult, lookalike: Lookalike, showKeys: string[]): Promise<WrittenReport> {
  const examplesDir = path.join(dir, 'examples');
  await mkdir(examplesDir, { recursive: true });
  const copied = new Set<string>();
  const thumb = async (id: string) => {
    const item = lookalike.item(id);
    const name = `item-${id.replace(/[^A-Za-z0-9_-]/g, '_')}${path.extname(item.image) || '.jpg'}`;
    if (!copied.has(name)) { await copyFile(item.image, path.join(examplesDir, name)); copied.add(name); }
    return `examples/${name}`;
  };
  const strips: string[] = [];
  for (const [i, ex] of result.examples.entries()) {
    const photo = `examples/query-${i}.jpg`;
    await writeFile(path.join(dir, photo), ex.photo);
    const lines: string[] = [];
    for (const key of showKeys) {
      const ids = ex.results[key]?.slice(0, 5) ?? [];
      const cells = await Promise.all(ids.map(async (id) => `<img src="${escapeHtml(await thumb(id))}" class="${id === ex.id ? 'hit' : ''}" title="${escapeHtml(id)}">`));
      lines.push(`<div class="line"><span>${escapeHtml(key.replace('|', ', pooling: '))}</span>${cells.join('')}</div>`);
    }
    strips.push(`<div class="example"><figure><img src="${photo}" class="query"><figcaption>${escapeHtml(PERTURBATION_LABELS[ex.kind])} · item ${escapeHtml(ex.id)}</figcaption></figure><div>${lines.join('')}</div></div>`);
  }
  const style = `<style>.example{display:flex;gap:12px;align-items:center;border-bottom:1px solid #eee;padding:6px 0}
.example img.query{height:120px}.line{display:flex;align-items:center;gap:4px;margin:2px 0}.line span{width:220px;font-size:12px;color:#555}
.line img{height:60px;border:2px solid transparent}.line img.hit{border-color:#1a7f37}</style>`;
  const overall = result.rows.filter((r) => r.kind === 'overall');
  return writeHtmlReport(dir, {
    title: 'Lookalike robustness: shopper photos of catalog products',
    subtitle: [
      `${result.queries} photos (seed ${result.seed}) of items from the held-out share ${result.holdout} of the catalog; the index holds each item's packshot.`,
      `recall@k: the very product is among the top k. precision@5 (others): share of the 5 best other results with the same ${result.attribute}.`,
    ],
    sections: [
      { title: 'Overall', tables: [{ header: ROBUSTNESS_HEADER, rows: robustnessTableRows(overall), csv: 'overall' }] },
      { title: 'Per kind of photo', tables: [{ header: ROBUSTNESS_HEADER, rows: robustnessTableRows(result.rows), csv: 'per-kind' }] },
      {
        title: 'Examples',
        notes: ['Each query photo with its top 5 results; the very product is framed in green.'],
        html: style + strips.join('\n'),
      },
    ],
  });
}
