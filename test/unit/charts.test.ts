import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import {
  categoryChart, confusionChart, lineChart, mapChart, perClassChart, renderSvg, scoreHistogramChart,
  svgToPng, topClasses, tradeOffChart, writeChart, type ChartSpec,
} from '../../src/lab/viz/charts.js';
import { scoreHistogram } from '../../src/math/stats.js';
import { tempDir } from '../helpers/fixtures.js';

/** Share of pixels that are not (near) white: the chart drew something. */
async function inkShare(png: Buffer): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let ink = 0;
  for (let i = 0; i < data.length; i += info.channels) if (data[i] < 235 || data[i + 1] < 235 || data[i + 2] < 235) ink++;
  return ink / (info.width * info.height);
}

const charts: ChartSpec[] = [
  categoryChart('articleType', Array.from({ length: 40 }, (_, i) => ({ value: `Type ${i}`, count: 400 - i * 9 })), 30),
  perClassChart('articleType', 5, [{ value: 'Tshirts', support: 40, precisionAtK: 0.9, knnF1: 0.8 }, { value: 'Watches', support: 20, precisionAtK: 0.5, knnF1: 0.4 }]),
  scoreHistogramChart('scores', 'Scores', scoreHistogram([0.8, 0.85, 0.9, 0.7], [0.5, 0.6, 0.65]), 0.72),
  lineChart('dims', 'p@5 against dims', [{ x: 2048, y: 0.8, series: 'max' }, { x: 256, y: 0.78, series: 'max' }], { x: 'dims', y: 'p@5', xLog: true }),
  tradeOffChart('speed', 'quality against speed', [{ x: 10, y: 0.8, label: '224x224 stretch', group: 'stretch' }, { x: 30, y: 0.76, label: '128x128 stretch', group: 'stretch' }], { x: 'images/s', y: 'p@5' }),
  confusionChart('articleType', { labels: ['Tshirts', 'Shirts', '(other)'], counts: [[8, 2, 1], [3, 6, 0]] }),
  mapChart('map', 'map', [{ x: 0, y: 0 }, { x: 1, y: 2 }, { x: 3, y: 1 }], ['Tshirts', 'Shirts', 'Tshirts'], 'articleType'),
];

describe('charts', () => {
  it('render every chart as SVG with its title and labels', async () => {
    for (const chart of charts) {
      const svg = await renderSvg(chart.spec);
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain(chart.title.replace(/&/g, '&amp;'));
    }
    const category = await renderSvg(charts[0].spec);
    expect(category).toContain('Type 0');
    expect(category).not.toContain('Type 35'); // beyond the top 30
  });

  it('writes PNG and SVG files that show ink, text included', async () => {
    const dir = tempDir();
    for (const chart of charts) {
      const written = await writeChart(dir, chart);
      expect(existsSync(written.svgFile)).toBe(true);
      const png = readFileSync(written.pngFile);
      const meta = await sharp(png).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(200);
      expect(await inkShare(png), chart.name).toBeGreaterThan(0.001);
    }
    expect(path.basename(dir)).toBeTruthy();
  });

  it('draws text in the PNG (a font is found)', async () => {
    // Only a title: without a usable font the picture would stay blank.
    const svg = await renderSvg({ title: 'Lookalike', width: 10, height: 10, data: { values: [] }, mark: 'point' });
    expect(await inkShare(svgToPng(svg))).toBeGreaterThan(0.01);
  });

  it('bins same- and different-class scores on one grid', () => {
    const h = scoreHistogram([0.9, 0.95, 1], [0.1, 0.2], 9);
    expect(h.bins.length).toBe(10);
    expect(h.bins[0]).toBeCloseTo(0.1, 6);
    expect(h.bins[9]).toBeCloseTo(1, 6);
    expect(h.same.reduce((a, b) => a + b)).toBe(3);
    expect(h.different.reduce((a, b) => a + b)).toBe(2);
    expect(h.same[8]).toBe(3);
  });

  it('keeps the most frequent classes and folds the rest into "other"', () => {
    const { classes, labelOf } = topClasses(['a', 'a', 'a', 'b', 'b', 'c', ''], 2);
    expect(classes).toEqual(['a', 'b']);
    expect(labelOf('c')).toBe('other');
    expect(labelOf('a')).toBe('a');
  });
});
