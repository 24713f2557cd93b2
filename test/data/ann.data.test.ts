import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HAS_DEV_CATALOG, devIndex } from './dev-index.js';
import { Lookalike } from '../../src/lookalike.js';
import { trainHead } from '../../src/train/train.js';
import { evaluateIndex } from '../../src/lab/eval/evaluate-index.js';

// ANN against exact search on real ResNet50 embeddings of 1,000 dev catalog items, in the
// plain backbone's space and in every mode of a head trained on a copy of the index.
describe.skipIf(!HAS_DEV_CATALOG)('approximate search on the dev catalog', () => {
  let plainDir: string;
  let headDir: string;

  function copyIndex(from: string, prefix: string): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
    // A copy: the ANN index is written beside the store, and the shared index stays untouched.
    for (const f of readdirSync(from)) if (f.startsWith('index.sqlite') || f === 'cache') cpSync(path.join(from, f), path.join(dir, f), { recursive: true });
    return dir;
  }

  beforeAll(async () => {
    const shared = await devIndex();
    plainDir = copyIndex(shared, 'lookalike-ann-plain-');
    headDir = copyIndex(shared, 'lookalike-ann-head-');
    await trainHead({ indexDir: headDir, views: 300 });
  });

  afterAll(() => {
    for (const d of [plainDir, headDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  async function recallAt10(lookalike: Lookalike, options: { mode?: string; filters?: Record<string, string[]> } = {}): Promise<{ recall: number; sameIds: number }> {
    const items = lookalike.indexView().items;
    let found = 0, total = 0, same = 0;
    const queries = items.filter((_, i) => i % 10 === 0);
    for (const item of queries) {
      const exact = await lookalike.searchById(item.id, { k: 10, ...options, search: 'exact' });
      const ann = await lookalike.searchById(item.id, { k: 10, ...options, search: 'ann' });
      const truth = new Set(exact.results.map((r) => r.id));
      found += ann.results.filter((r) => truth.has(r.id)).length;
      total += exact.results.length;
      if (ann.results.map((r) => r.id).join() === exact.results.map((r) => r.id).join()) same++;
    }
    return { recall: found / total, sameIds: same / queries.length };
  }

  it('recall@10 of ANN against exact is at least 0.99 in every space (plain backbone; style, balanced, colour)', async () => {
    for (const [dir, modes] of [[plainDir, [undefined]], [headDir, ['style', 'balanced', 'colour']]] as const) {
      const lookalike = await Lookalike.open(dir);
      try {
        for (const mode of modes) {
          const { recall } = await recallAt10(lookalike, { mode });
          expect(recall, `${dir} ${mode ?? 'backbone'}`).toBeGreaterThanOrEqual(0.99);
          expect(lookalike.indexView().annStatus(lookalike.space({ mode })).meta?.recallAt10).toBeGreaterThanOrEqual(0.99);
        }
      } finally {
        await lookalike.close();
      }
    }
  });

  it('filtered searches (gender=Women, articleType=Watches, a value with 3 items) return the same ids as exact', async () => {
    const lookalike = await Lookalike.open(headDir);
    try {
      const types = lookalike.facets(['articleType']).articleType;
      const three = types.find((t) => t.count === 3);
      expect(three).toBeDefined();
      const filterList: Array<Record<string, string[]>> = [{ gender: ['Women'] }, { articleType: ['Watches'] }, { articleType: [three!.value] }];
      for (const filters of filterList) {
        const { sameIds } = await recallAt10(lookalike, { filters });
        expect(sameIds, JSON.stringify(filters)).toBe(1);
      }
    } finally {
      await lookalike.close();
    }
  });

  it('leave-one-out eval figures with ANN equal the exact ones within 0.005', async () => {
    for (const dir of [plainDir, headDir]) {
      const lookalike = await Lookalike.open(dir);
      try {
        const attributes = ['articleType', 'gender', 'baseColour'];
        const exact = await evaluateIndex(lookalike, { attributes });
        const ann = await evaluateIndex(lookalike, { attributes, search: 'ann' });
        for (const a of exact.attributes) {
          const b = ann.attributes.find((x) => x.attribute === a.attribute)!;
          expect(Math.abs(b.precisionAtK - a.precisionAtK), `${dir} ${a.attribute}`).toBeLessThanOrEqual(0.005);
          expect(Math.abs(b.precisionAt1 - a.precisionAt1)).toBeLessThanOrEqual(0.005);
          expect(Math.abs(b.mapAtK - a.mapAtK)).toBeLessThanOrEqual(0.005);
        }
      } finally {
        await lookalike.close();
      }
    }
  });
});
