import { describe, expect, it } from 'vitest';
import { EXPANSION_GAP, searchPhoto, type PhotoSearchSteps } from '../../src/photo/search.js';

type Hit = { id: string; score: number };

/** Steps over fixed hits that record what was asked of them. */
function steps(look: Hit[], found: Hit[] = look) {
  const calls: string[] = [];
  const fake: PhotoSearchSteps<Hit> = {
    look: async (query, k) => { calls.push(`look ${k} [${Array.from(query)}]`); return look.slice(0, k); },
    find: async (query, k) => { calls.push(`find ${k} [${Array.from(query).map((v) => v.toFixed(3))}]`); return found.slice(0, k); },
    vectorOf: async (hit) => { calls.push(`vector ${hit.id}`); return new Float32Array([0, 1]); },
  };
  return { fake, calls };
}

const query = new Float32Array([1, 0]);

describe('searching a photo (photo/search.ts)', () => {
  it('serves the first look as the list when the top result does not stand out and no words are given', async () => {
    const { fake, calls } = steps([{ id: 'a', score: 0.9 }, { id: 'b', score: 0.9 - EXPANSION_GAP / 2 }, { id: 'c', score: 0.5 }]);
    const { fetch, expanded } = await searchPhoto(query, { k: 3, threshold: 0.6, expand: true, words: false }, fake);
    expect(expanded).toBe(false);
    expect((await fetch(3)).map((h) => h.id)).toEqual(['a', 'b']);
    expect(calls).toEqual(['look 3 [1,0]', 'vector a']);
  });

  it('searches the list again with the top result\'s vector added when it stands out', async () => {
    const { fake, calls } = steps([{ id: 'a', score: 0.9 }, { id: 'b', score: 0.5 }], [{ id: 'a', score: 0.95 }, { id: 'c', score: 0.7 }]);
    const { fetch, expanded } = await searchPhoto(query, { k: 1, expand: true, words: false }, fake);
    expect(expanded).toBe(true);
    expect((await fetch(2)).map((h) => h.id)).toEqual(['a', 'c']);
    // At least two results in the first look, to see a gap; the expanded query is (1, 1) / sqrt 2.
    expect(calls).toEqual(['look 2 [1,0]', 'vector a', 'find 2 [0.707,0.707]']);
  });

  it('neither expands when told not to nor reuses the first look when words re-rank the list', async () => {
    const { fake, calls } = steps([{ id: 'a', score: 0.9 }, { id: 'b', score: 0.5 }]);
    const { fetch, expanded } = await searchPhoto(query, { k: 2, expand: false, words: true }, fake);
    expect(expanded).toBe(false);
    await fetch(2);
    expect(calls).toEqual(['look 2 [1,0]', 'find 2 [1.000,0.000]']);
  });
});
