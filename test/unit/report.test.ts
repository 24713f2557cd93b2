import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { writeSyntheticEvalReport } from '../helpers/eval-report.js';

let reportDir: string;

beforeAll(async () => {
  reportDir = await writeSyntheticEvalReport();
});

describe('the evaluation report folder', () => {
  it('holds index.html, the charts as PNG and SVG, and CSV tables', () => {
    expect(existsSync(path.join(reportDir, 'index.html'))).toBe(true);
    for (const name of ['category-articleType', 'per-class-articleType', 'confusion-articleType', 'scores-articleType', 'map-articleType']) {
      expect(existsSync(path.join(reportDir, 'charts', `${name}.png`)), name).toBe(true);
      expect(existsSync(path.join(reportDir, 'charts', `${name}.svg`)), name).toBe(true);
    }
    const metrics = parse(readFileSync(path.join(reportDir, 'metrics.csv')), { columns: true }) as Array<Record<string, string>>;
    expect(metrics.map((m) => m.attribute)).toEqual(['articleType', 'masterCategory', 'baseColour']);
    expect(Number(metrics[0]['precision@5'])).toBeGreaterThan(0.5);
    const perClass = parse(readFileSync(path.join(reportDir, 'per-class-articleType.csv')), { columns: true }) as Array<Record<string, string>>;
    expect(perClass).toHaveLength(6);
    const confusion = parse(readFileSync(path.join(reportDir, 'confusion-articleType.csv'))) as string[][];
    expect(confusion[0].slice(1)).toEqual(perClass.map((c) => c.value));
  });
});
