/**
 * `lookalike bench --ann` and `bench --synthetic` as processes, on the clustered synthetic
 * index of test/helpers/synthetic-index.ts (the one test/unit/ann.test.ts searches).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../helpers/cli.js';
import { createIndex } from '../helpers/synthetic-index.js';

describe('approximate search (HNSW) over a real index', () => {
  const N = 8000;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-ann-'));
    createIndex(dir, N);
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('`bench --ann` prints exact and approximate search side by side, and `bench --synthetic` a fresh serving process\'s figures', () => {
    const ann = runCli(['bench', '--ann', '--index', dir, '--queries', '30', '--json']);
    expect(ann.code, ann.stderr).toBe(0);
    const r = JSON.parse(ann.stdout);
    expect(r.items).toBe(N);
    expect(r.spaces.map((x: { space: string }) => x.space)).toEqual(['backbone:max']);
    expect(r.spaces[0].ann.recallAtK).toBeGreaterThanOrEqual(0.95);
    expect(r.spaces[0].annFromFiles.recallAtK).toBeGreaterThanOrEqual(0.95);
    expect(r.filtered.length).toBe(0); // this catalog has no gender or articleType column
    const synthetic = runCli(['bench', '--synthetic', '3000', '--index', dir, '--queries', '20']);
    expect(synthetic.code, synthetic.stderr).toBe(0);
    expect(synthetic.stdout).toMatch(/synthetic catalog: 3,000 items around 8000 real vectors/);
    expect(synthetic.stdout).toMatch(/recall@10 vs exact\s+1\s+(0\.9\d+|1\.0+)/);
    expect(synthetic.stdout).toMatch(/mean cosine of the 10th neighbour/);
  });
});
