/**
 * Report folders: a static index.html (charts inline as SVG, each linked to its PNG and
 * SVG file, tables), the charts under charts/, and CSV files of every table, so that a
 * shop can open the page, or load the numbers into a spreadsheet.
 *
 * `writeHtmlReport` lays out any sections; `writeEvalReport` is the evaluation's report.
 * The tuning report (tune/report.ts) reuses the same page builder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import {
  categoryChart, confusionChart, mapChart, perClassChart, scoreHistogramChart, writeChart,
  type ChartSpec, type WrittenChart,
} from '../viz/charts.js';
import { CATEGORY_CHART_COLUMNS } from '../../defaults.js';
import type { Histogram } from '../../math/stats.js';
import type { EvalResult } from './evaluate.js';

export interface ReportTable {
  caption?: string;
  header: string[];
  rows: Array<Array<string | number>>;
  /** Also written as <name>.csv in the report folder. */
  csv?: string;
}

export interface ReportSection {
  title: string;
  /** Short paragraphs (plain text, escaped). */
  notes?: string[];
  charts?: ChartSpec[];
  /** Charts drawn as <img> of the PNG instead of inline SVG (large scatters). */
  images?: ChartSpec[];
  tables?: ReportTable[];
  /** Markup built by the caller, inserted as is (every text in it already escaped). */
  html?: string;
}

export interface ReportPage {
  title: string;
  subtitle?: string[];
  sections: ReportSection[];
}

export interface WrittenReport {
  dir: string;
  html: string;
  charts: WrittenChart[];
  csv: string[];
}

export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));

const fmt = (v: string | number) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(4)) : v);

function tableHtml(t: ReportTable): string {
  const head = `<tr>${t.header.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>`;
  const body = t.rows.map((r) => `<tr>${r.map((c) => `<td${typeof c === 'number' ? ' class="num"' : ''}>${escapeHtml(fmt(c))}</td>`).join('')}</tr>`).join('\n');
  const link = t.csv ? ` <a href="${escapeHtml(t.csv)}.csv">${escapeHtml(t.csv)}.csv</a>` : '';
  return `<table>${t.caption || link ? `<caption>${escapeHtml(t.caption ?? '')}${link}</caption>` : ''}<thead>${head}</thead><tbody>\n${body}\n</tbody></table>`;
}

/** Writes index.html, charts/*.svg|png and the tables' CSV files into `dir`. */
export async function writeHtmlReport(dir: string, page: ReportPage): Promise<WrittenReport> {
  await mkdir(dir, { recursive: true });
  const chartsDir = path.join(dir, 'charts');
  const written: WrittenChart[] = [];
  const csv: string[] = [];
  const parts: string[] = [];
  for (const section of page.sections) {
    parts.push(`<section><h2>${escapeHtml(section.title)}</h2>`);
    for (const note of section.notes ?? []) parts.push(`<p>${escapeHtml(note)}</p>`);
    for (const spec of section.charts ?? []) {
      const chart = await writeChart(chartsDir, spec);
      written.push(chart);
      parts.push(`<figure class="chart" data-chart="${escapeHtml(chart.name)}">${chart.svg}<figcaption>${escapeHtml(chart.title)} — <a href="charts/${escapeHtml(chart.name)}.png">PNG</a> · <a href="charts/${escapeHtml(chart.name)}.svg">SVG</a></figcaption></figure>`);
    }
    for (const spec of section.images ?? []) {
      const chart = await writeChart(chartsDir, spec);
      written.push(chart);
      parts.push(`<figure class="chart image" data-chart="${escapeHtml(chart.name)}"><a href="charts/${escapeHtml(chart.name)}.svg"><img src="charts/${escapeHtml(chart.name)}.png" alt="${escapeHtml(chart.title)}"></a><figcaption>${escapeHtml(chart.title)} — <a href="charts/${escapeHtml(chart.name)}.png">PNG</a> · <a href="charts/${escapeHtml(chart.name)}.svg">SVG</a></figcaption></figure>`);
    }
    for (const table of section.tables ?? []) {
      const name = table.csv?.replace(/[^A-Za-z0-9_-]+/g, '_');
      if (name) {
        await writeFile(path.join(dir, `${name}.csv`), stringify([table.header, ...table.rows.map((r) => r.map((c) => (typeof c === 'number' ? String(c) : c)))]));
        csv.push(`${name}.csv`);
      }
      parts.push(tableHtml({ ...table, csv: name }));
    }
    if (section.html) parts.push(section.html);
    parts.push('</section>');
  }
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title>
<style>
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
.subtitle { color: #555; margin: 2px 0; }
figure.chart { display: inline-block; vertical-align: top; margin: 8px 16px 16px 0; }
figure.chart svg, figure.chart img { max-width: 100%; height: auto; display: block; }
figure.image img { width: 900px; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #666; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
caption a { font-weight: normal; margin-left: 8px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f6f6; }
</style></head>
<body>
<h1>${escapeHtml(page.title)}</h1>
${(page.subtitle ?? []).map((s) => `<p class="subtitle">${escapeHtml(s)}</p>`).join('\n')}
${parts.join('\n')}
</body></html>
`;
  const htmlFile = path.join(dir, 'index.html');
  await writeFile(htmlFile, html);
  return { dir, html: htmlFile, charts: written, csv };
}

/** What a map section needs: 2-D points with each point's value of the colouring attribute. */
export interface MapData {
  points: Array<{ x: number; y: number }>;
  values?: string[];
  attribute?: string;
  method?: string;
}

export interface EvalReportInput {
  result: EvalResult & { space?: string; index?: string };
  /** Value counts per metadata column for the category-distribution charts. */
  categories?: Record<string, Array<{ value: string; count: number }>>;
  /** Similarity scores of same- vs different-value neighbours for one attribute. */
  scores?: { attribute: string; histogram: Histogram };
  map?: MapData;
}

export const CATEGORY_FIELDS: readonly string[] = CATEGORY_CHART_COLUMNS;

/** Metric table rows, shared by the terminal, the CSV and the page. */
export function metricRows(result: EvalResult): Array<Array<string | number>> {
  return result.attributes.map((a) => [a.attribute, a.queries, a.classes, a.precisionAt1, a.precisionAtK, a.mapAtK, a.knnAccuracy, a.macroF1]);
}

export function metricHeader(k: number): string[] {
  return ['attribute', 'queries', 'classes', 'precision@1', `precision@${k}`, `mAP@${k}`, `kNN accuracy (k=${k})`, 'macro-F1'];
}

export function describeProtocol(result: EvalResult): string {
  return result.protocol === 'held-out'
    ? `held-out: ${result.queries} queries (share ${result.queryFraction} by a stable hash of the id) against the other ${result.candidates} items`
    : `leave-one-out: each of the ${result.queries} items queries the other ${result.items - 1}`;
}

export async function writeEvalReport(dir: string, input: EvalReportInput): Promise<WrittenReport> {
  const { result } = input;
  const k = result.k;
  const sections: ReportSection[] = [];
  sections.push({
    title: 'Summary',
    notes: [
      `${describeProtocol(result)}; k = ${k}; ${result.dim}-d vectors${result.space ? ` in space ${result.space}` : ''}.`,
      'precision@k: share of the top k that share the query\'s value; mAP@k: average precision over the top k, normalised by min(k, relevant items); kNN accuracy and macro-F1: majority vote of the top k as a classifier.',
      `Computed in ${result.seconds.toFixed(1)} s (batched search ${result.searchSeconds.toFixed(1)} s).`,
    ],
    tables: [{ header: metricHeader(k), rows: metricRows(result), csv: 'metrics' }],
  });
  if (input.map) {
    sections.push({
      title: 'Map of the embedding space',
      notes: [`${input.map.method ?? 't-SNE'} of the catalog embeddings in two dimensions${input.map.attribute ? `, coloured by ${input.map.attribute}` : ''}: items that look alike lie close together.`],
      images: [mapChart(`map-${input.map.attribute ?? 'items'}`, `${input.map.method ?? 't-SNE'} map${input.map.attribute ? ` by ${input.map.attribute}` : ''} (${input.map.points.length} items)`, input.map.points, input.map.values, input.map.attribute)],
    });
  }
  if (input.categories && Object.keys(input.categories).length) {
    sections.push({
      title: 'Catalog: category distribution',
      charts: Object.entries(input.categories).map(([field, counts]) => categoryChart(field, counts, 30)),
    });
  }
  if (input.scores) {
    sections.push({
      title: 'Similarity scores',
      notes: [`Cosine similarity of the top-${k} neighbours whose ${input.scores.attribute} is the same as the query's, and of those whose ${input.scores.attribute} differs. A similarity threshold keeps the right-hand part; \`lookalike tune\` suggests one.`],
      charts: [scoreHistogramChart(`scores-${input.scores.attribute}`, `${input.scores.attribute}: similarity of top-${k} neighbours`, input.scores.histogram)],
    });
  }
  for (const a of result.attributes) {
    sections.push({
      title: `Per class: ${a.attribute}`,
      charts: [perClassChart(a.attribute, k, a.perClass), ...(a.confusion.counts.length > 1 ? [confusionChart(a.attribute, a.confusion)] : [])],
      tables: [
        {
          caption: `${a.attribute}: per class`,
          header: ['value', 'queries', 'candidates', 'precision@1', `precision@${k}`, 'kNN precision', 'kNN recall', 'kNN F1'],
          rows: a.perClass.map((c) => [c.value, c.support, c.candidates, c.precisionAt1, c.precisionAtK, c.knnPrecision, c.knnRecall, c.knnF1]),
          csv: `per-class-${a.attribute}`,
        },
        {
          caption: `${a.attribute}: kNN confusion (rows: true value, columns: predicted)`,
          header: ['true \\ predicted', ...a.confusion.labels],
          rows: a.confusion.counts.map((row, i) => [a.confusion.labels[i], ...row]),
          csv: `confusion-${a.attribute}`,
        },
      ],
    });
  }
  return writeHtmlReport(dir, {
    title: 'Lookalike: recommendation quality',
    subtitle: [result.index ? `index: ${result.index}` : '', `generated ${new Date().toISOString()}`].filter(Boolean),
    sections,
  });
}
