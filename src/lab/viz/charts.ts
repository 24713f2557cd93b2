/**
 * Charts for the evaluation, tuning and map reports, declared as Vega-Lite specs and
 * rendered without a browser: Vega's headless view gives SVG, resvg rasterises it to PNG.
 *
 * Data is aggregated here (counts, bins, top classes) before it reaches Vega, so a spec
 * carries at most a few thousand values, except the map scatter, which carries one
 * point per catalog item.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';
import type { Histogram } from '../../math/stats.js';

export type { TopLevelSpec };

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
/** Debian's fonts-dejavu-core puts them here; resvg needs a real font file to draw text. */
const FONT_DIRS = ['/usr/share/fonts/truetype/dejavu', '/usr/share/fonts/dejavu', '/usr/share/fonts/TTF'];
const OTHER_COLOUR = '#b9b9b9';
/** Tableau 10 then its lighter half: distinguishable for the ~12 classes a map shows. */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#17becf', '#bcbd22', '#1f3a93', '#8c564b', '#e377c2'];

const baseConfig = {
  font: FONT,
  background: 'white',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, labelLimit: 180 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 200 },
  title: { fontSize: 14, anchor: 'start' as const },
};

/** Renders a Vega-Lite spec to an SVG string (no browser, no canvas). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const withConfig = { ...spec, config: { ...baseConfig, ...(spec.config ?? {}) } } as TopLevelSpec;
  const compiled = compile(withConfig).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    // Coordinates come out with ~15 decimals; two are plenty on screen and shrink a
    // 30,000-point map several times over.
    return (await view.toSVG()).replace(/(\.\d{2})\d{2,}/g, '$1');
  } finally {
    view.finalize();
  }
}

function fontOptions(): ResvgRenderOptions['font'] {
  const dirs = FONT_DIRS.filter((d) => existsSync(d));
  // Loading one known family is fast and looks the same everywhere; otherwise fall back
  // to whatever fontconfig-less scanning of the system finds.
  return dirs.length
    ? { loadSystemFonts: false, fontDirs: dirs, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' }
    : { loadSystemFonts: true };
}

/** Rasterises an SVG to PNG at `scale` times its size, on white. */
export function svgToPng(svg: string, scale = 2): Buffer {
  return new Resvg(svg, { font: fontOptions(), fitTo: { mode: 'zoom', value: scale }, background: 'white' }).render().asPng();
}

export interface WrittenChart {
  name: string;
  title: string;
  svg: string;
  svgFile: string;
  pngFile: string;
}

export interface ChartSpec {
  /** File stem, e.g. "category-articleType". */
  name: string;
  title: string;
  spec: TopLevelSpec;
}

/** Writes <dir>/<name>.svg and <dir>/<name>.png. */
export async function writeChart(dir: string, chart: ChartSpec, scale = 2): Promise<WrittenChart> {
  await mkdir(dir, { recursive: true });
  const svg = await renderSvg(chart.spec);
  const svgFile = path.join(dir, `${chart.name}.svg`);
  const pngFile = path.join(dir, `${chart.name}.png`);
  await writeFile(svgFile, svg);
  await writeFile(pngFile, svgToPng(svg, scale));
  return { name: chart.name, title: chart.title, svg, svgFile, pngFile };
}

const safeName = (s: string) => s.replace(/[^A-Za-z0-9_-]+/g, '_');

/** Horizontal bars: how many catalog items have each value of `field` (top `top`). */
export function categoryChart(field: string, counts: Array<{ value: string; count: number }>, top = 30): ChartSpec {
  const sorted = [...counts].sort((a, b) => b.count - a.count || a.value.localeCompare(b.value));
  const shown = sorted.slice(0, top);
  const rest = sorted.slice(top).reduce((s, c) => s + c.count, 0);
  const title = sorted.length > top ? `${field}: top ${top} of ${sorted.length} values (${rest} items in the rest)` : `${field}: items per value`;
  return {
    name: `category-${safeName(field)}`,
    title,
    spec: {
      title,
      width: 380,
      height: { step: 16 },
      data: { values: shown },
      mark: { type: 'bar', color: PALETTE[0], tooltip: true },
      encoding: {
        y: { field: 'value', type: 'nominal', sort: '-x', title: null },
        x: { field: 'count', type: 'quantitative', title: 'items' },
      },
    } as TopLevelSpec,
  };
}

/** Precision@k per class (the most frequent `top` classes), with support in the tooltip. */
export function perClassChart(attribute: string, k: number, rows: Array<{ value: string; support: number; precisionAtK: number; knnF1: number }>, top = 30): ChartSpec {
  const shown = [...rows].sort((a, b) => b.support - a.support).slice(0, top)
    .map((r) => ({ value: r.value, support: r.support, precision: r.precisionAtK, f1: r.knnF1 }));
  const title = `${attribute}: precision@${k} per class${rows.length > top ? ` (${top} most frequent of ${rows.length})` : ''}`;
  return {
    name: `per-class-${safeName(attribute)}`,
    title,
    spec: {
      title,
      width: 520,
      height: { step: 16 },
      data: { values: shown },
      mark: { type: 'bar', tooltip: true },
      encoding: {
        y: { field: 'value', type: 'nominal', sort: { field: 'support', order: 'descending' }, title: null },
        x: { field: 'precision', type: 'quantitative', title: `precision@${k}`, scale: { domain: [0, 1] } },
        color: { field: 'precision', type: 'quantitative', scale: { scheme: 'redyellowgreen', domain: [0, 1] }, legend: null },
        tooltip: [{ field: 'value' }, { field: 'support' }, { field: 'precision', format: '.3f' }, { field: 'f1', title: 'kNN F1', format: '.3f' }],
      },
    } as TopLevelSpec,
  };
}

/** Overlaid histograms (share of each group per bin), with an optional threshold rule. */
export function scoreHistogramChart(name: string, title: string, h: Histogram, threshold?: number, groups: [string, string] = ['same class', 'different class']): ChartSpec {
  const totalSame = h.same.reduce((a, b) => a + b, 0) || 1;
  const totalDiff = h.different.reduce((a, b) => a + b, 0) || 1;
  const values: Array<Record<string, unknown>> = [];
  for (let i = 0; i < h.same.length; i++) {
    values.push({ start: h.bins[i], end: h.bins[i + 1], group: groups[0], share: h.same[i] / totalSame, count: h.same[i] });
    values.push({ start: h.bins[i], end: h.bins[i + 1], group: groups[1], share: h.different[i] / totalDiff, count: h.different[i] });
  }
  const layers: unknown[] = [{
    data: { values },
    mark: { type: 'bar', opacity: 0.55, binSpacing: 0, tooltip: true },
    encoding: {
      x: { field: 'start', type: 'quantitative', bin: { binned: true }, title: 'cosine similarity', scale: { zero: false } },
      x2: { field: 'end' },
      y: { field: 'share', type: 'quantitative', stack: null, title: 'share of neighbours', axis: { format: '%' } },
      color: { field: 'group', type: 'nominal', scale: { domain: groups, range: ['#59a14f', '#e15759'] }, title: null },
      tooltip: [{ field: 'group' }, { field: 'start', format: '.3f' }, { field: 'count' }],
    },
  }];
  if (threshold !== undefined && Number.isFinite(threshold)) {
    layers.push({
      data: { values: [{ t: threshold, label: `suggested threshold ${threshold.toFixed(3)}` }] },
      layer: [
        { mark: { type: 'rule', strokeDash: [4, 3], strokeWidth: 2, color: '#333' }, encoding: { x: { field: 't', type: 'quantitative' } } },
        { mark: { type: 'text', align: 'left', dx: 4, dy: -4, baseline: 'bottom', color: '#333' }, encoding: { x: { field: 't', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } } },
      ],
    });
  }
  return { name, title, spec: { title, width: 560, height: 260, layer: layers } as TopLevelSpec };
}

/** Lines of a metric against a numeric setting, one line per series. */
export function lineChart(name: string, title: string, values: Array<{ x: number; y: number; series: string; dash?: string }>, axes: { x: string; y: string; xLog?: boolean; yDomain?: [number, number] }): ChartSpec {
  const dashed = values.some((v) => v.dash !== undefined);
  return {
    name,
    title,
    spec: {
      title,
      width: 420,
      height: 260,
      data: { values },
      mark: { type: 'line', point: true, tooltip: true },
      encoding: {
        x: { field: 'x', type: 'quantitative', title: axes.x, scale: axes.xLog ? { type: 'log', base: 2 } : { zero: false } },
        y: { field: 'y', type: 'quantitative', title: axes.y, scale: axes.yDomain ? { domain: axes.yDomain } : { zero: false } },
        color: { field: 'series', type: 'nominal', title: null, scale: { range: PALETTE } },
        ...(dashed ? { strokeDash: { field: 'dash', type: 'nominal', title: null } } : {}),
      },
    } as TopLevelSpec,
  };
}

/** Labelled points: quality against cost, one point per setting. */
export function tradeOffChart(name: string, title: string, values: Array<{ x: number; y: number; label: string; group: string }>, axes: { x: string; y: string; xLog?: boolean }): ChartSpec {
  const encoding = {
    x: { field: 'x', type: 'quantitative', title: axes.x, scale: axes.xLog ? { type: 'log' } : { zero: true } },
    y: { field: 'y', type: 'quantitative', title: axes.y, scale: { zero: false, padding: 16 } },
  };
  return {
    name,
    title,
    spec: {
      title,
      width: 460,
      height: 300,
      data: { values },
      layer: [
        { mark: { type: 'point', filled: true, size: 70, tooltip: true }, encoding: { ...encoding, color: { field: 'group', type: 'nominal', title: null, scale: { range: PALETTE } } } },
        { mark: { type: 'text', align: 'left', dx: 6, dy: -6, fontSize: 10 }, encoding: { ...encoding, text: { field: 'label' } } },
      ],
    } as TopLevelSpec,
  };
}

/** The most frequent values, with every other value folded into "other". */
export function topClasses(values: string[], top = 12): { classes: string[]; labelOf: (v: string) => string } {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v || '(none)', (counts.get(v || '(none)') ?? 0) + 1);
  const classes = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, top).map(([v]) => v);
  const keep = new Set(classes);
  return { classes, labelOf: (v: string) => (keep.has(v || '(none)') ? v || '(none)' : 'other') };
}

/** The 2-D map (t-SNE) as a scatter, coloured by an attribute's top classes. */
export function mapChart(name: string, title: string, points: Array<{ x: number; y: number }>, values: string[] | undefined, attribute: string | undefined, top = 12): ChartSpec {
  const { classes, labelOf } = topClasses(values ?? points.map(() => ''), top);
  const hasOther = values ? values.some((v) => labelOf(v) === 'other') : false;
  const domain = values ? [...classes, ...(hasOther ? ['other'] : [])] : ['items'];
  const range = values ? [...classes.map((_, i) => PALETTE[i % PALETTE.length]), ...(hasOther ? [OTHER_COLOUR] : [])] : [PALETTE[0]];
  // Draw "other" first so that the named classes stay on top.
  const data = points.map((p, i) => ({ x: round(p.x), y: round(p.y), c: values ? labelOf(values[i]) : 'items' }))
    .sort((a, b) => Number(b.c === 'other') - Number(a.c === 'other'));
  const size = points.length > 20_000 ? 3 : points.length > 5_000 ? 6 : 14;
  return {
    name,
    title,
    spec: {
      title,
      width: 760,
      height: 640,
      data: { values: data },
      mark: { type: 'circle', size, opacity: 0.75, aria: false },
      encoding: {
        x: { field: 'x', type: 'quantitative', axis: null, scale: { zero: false, nice: false } },
        y: { field: 'y', type: 'quantitative', axis: null, scale: { zero: false, nice: false } },
        color: { field: 'c', type: 'nominal', title: attribute ?? null, scale: { domain, range }, legend: values ? { symbolOpacity: 1, symbolSize: 80 } : null },
      },
    } as TopLevelSpec,
  };
}

/** Confusion of the kNN classifier among the most frequent classes, as a heat map. */
export function confusionChart(attribute: string, confusion: { labels: string[]; counts: number[][] }): ChartSpec {
  const values: Array<Record<string, unknown>> = [];
  confusion.counts.forEach((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((count, p) => values.push({ truth: confusion.labels[t], predicted: confusion.labels[p], count, share: count / total }));
  });
  const order = confusion.labels;
  const title = `${attribute}: kNN confusion among the ${confusion.counts.length} most frequent classes (row share)`;
  return {
    name: `confusion-${safeName(attribute)}`,
    title,
    spec: {
      title,
      width: { step: 34 },
      height: { step: 24 },
      data: { values },
      encoding: {
        x: { field: 'predicted', type: 'nominal', sort: order, axis: { labelAngle: -40 }, title: 'predicted' },
        y: { field: 'truth', type: 'nominal', sort: order, title: 'true value' },
      },
      layer: [
        { mark: { type: 'rect', tooltip: true }, encoding: { color: { field: 'share', type: 'quantitative', scale: { scheme: 'blues', domain: [0, 1] }, legend: null }, tooltip: [{ field: 'truth' }, { field: 'predicted' }, { field: 'count' }] } },
        { mark: { type: 'text', fontSize: 9 }, encoding: { text: { field: 'count' }, color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: '#222' } } },
      ],
    } as TopLevelSpec,
  };
}

const round = (v: number) => Math.round(v * 1000) / 1000;
