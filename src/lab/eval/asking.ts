/**
 * `lookalike eval-asking`: the figures of docs/asking.md, measured on an index of the dev
 * catalog. Recommend from examples (share of the top 10 with the liked articleType and
 * colour, per way of combining the examples, against a single liked item), words (the
 * precision of 20 written-down queries, and their latency on this store) and shop the
 * look (how many products placed in a scene photo are found in the top 10 of some region,
 * against one whole-photo search).
 */
import { Random } from '../../math/random.js';
import type { Lookalike } from '../../lookalike.js';
import { averageQuery, type RecommendStrategy } from '../../search/recommend.js';
import { scenePhoto } from '../../photo/synthetic.js';
import { checkText } from '../../search/text.js';
import { percentile } from '../../math/stats.js';

const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);

const TOP = 10;

/** A query shoppers type, and which products answer it (judged on the catalog's labels). */
export interface TextQuery { text: string; wants: Record<string, string[]> }

/**
 * The 20 queries of docs/asking.md. A product answers a query when each named column holds
 * one of the values (articleType as styles.csv writes it): strict, so "navy shirt" does not
 * count a navy T-shirt.
 */
export const TEXT_QUERIES: readonly TextQuery[] = [
  { text: 'navy shirt', wants: { articleType: ['Shirts'], baseColour: ['Navy Blue'] } },
  { text: 'leather belt', wants: { articleType: ['Belts'] } },
  { text: 'sports shoes', wants: { articleType: ['Sports Shoes'] } },
  { text: 'black watch', wants: { articleType: ['Watches'], baseColour: ['Black'] } },
  { text: 'women handbags', wants: { articleType: ['Handbags'], gender: ['Women'] } },
  { text: 'red dress', wants: { articleType: ['Dresses'], baseColour: ['Red'] } },
  { text: 'blue jeans', wants: { articleType: ['Jeans'], baseColour: ['Blue', 'Navy Blue'] } },
  { text: 'white tshirt', wants: { articleType: ['Tshirts'], baseColour: ['White'] } },
  { text: 'sunglasses', wants: { articleType: ['Sunglasses'] } },
  { text: 'men formal shoes', wants: { articleType: ['Formal Shoes'], gender: ['Men'] } },
  { text: 'pink top', wants: { articleType: ['Tops'], baseColour: ['Pink'] } },
  { text: 'casual shoes', wants: { articleType: ['Casual Shoes'] } },
  { text: 'grey track pants', wants: { articleType: ['Track Pants'], baseColour: ['Grey'] } },
  { text: 'kurtas', wants: { articleType: ['Kurtas'] } },
  { text: 'silver earrings', wants: { articleType: ['Earrings'], baseColour: ['Silver'] } },
  { text: 'brown wallet', wants: { articleType: ['Wallets'], baseColour: ['Brown'] } },
  { text: 'flip flops', wants: { articleType: ['Flip Flops'] } },
  { text: 'green shirts', wants: { articleType: ['Shirts'], baseColour: ['Green'] } },
  { text: 'socks', wants: { articleType: ['Socks'] } },
  { text: 'backpack', wants: { articleType: ['Backpacks'] } },
];

const answers = (q: TextQuery, m: Record<string, string>) => Object.entries(q.wants).every(([field, values]) => values.includes(m[field] ?? ''));

export interface TextQueryResult { text: string; matches: number; precision: number; precisionAt10: number; ms: number }

/** Precision of each query's matches (all of them, and the first 10) and its median latency over `repeats` runs. */
export async function measureText(lookalike: Lookalike, queries: readonly TextQuery[] = TEXT_QUERIES, repeats = 5): Promise<{ queries: TextQueryResult[]; precision: number; precisionAt10: number; medianMs: number }> {
  const out: TextQueryResult[] = [];
  for (const q of queries) {
    const times: number[] = [];
    let top = await lookalike.searchText(q.text, { k: TOP });
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      top = await lookalike.searchText(q.text, { k: TOP });
      times.push(performance.now() - t0);
    }
    // Every match: what text_mode=filter lets through.
    const hits = await lookalike.indexView().textHits(checkText(q.text)!);
    const all = [...hits.rows].map((r) => answers(q, lookalike.indexView().items[r].metadata));
    const share = (list: boolean[]) => (list.length ? list.filter(Boolean).length / list.length : 0);
    out.push({ text: q.text, matches: all.length, precision: share(all), precisionAt10: share(top.results.map((r) => answers(q, r.metadata))), ms: median(times) });
  }
  const mean = (f: (r: TextQueryResult) => number) => out.reduce((s, r) => s + f(r), 0) / out.length;
  return { queries: out, precision: mean((r) => r.precision), precisionAt10: mean((r) => r.precisionAt10), medianMs: median(out.map((r) => r.ms)) };
}

/**
 * "This, but in red": a catalog photo plus the name of another colour its articleType comes
 * in. Per way (the photo alone, words as a filter, words as a boost), the share of the top 10
 * (the photo's own item left out) with the photo's articleType in the asked colour.
 */
export async function measurePhotoPlusWords(lookalike: Lookalike, queries = 100, seed = 26): Promise<{ queries: number; ways: Array<{ name: string; share: number; typeShare: number }>; medianMs: number }> {
  const rng = new Random(seed);
  const items = lookalike.indexView().items;
  const count = new Map<string, number>();
  for (const item of items) count.set(`${item.metadata.articleType}\u0000${item.metadata.baseColour}`, (count.get(`${item.metadata.articleType}\u0000${item.metadata.baseColour}`) ?? 0) + 1);
  const ways = [
    { name: 'photo alone', options: {} },
    { name: 'photo + colour words, filter', options: { textMode: 'filter' as const } },
    { name: 'photo + colour words, boost', options: { textMode: 'boost' as const } },
  ];
  const shares = ways.map(() => 0), typeShares = ways.map(() => 0);
  const times: number[] = [];
  let done = 0;
  for (let attempt = 0; done < queries && attempt < queries * 20; attempt++) {
    const item = items[rng.int(items.length)];
    const type = item.metadata.articleType;
    const colours = [...count].filter(([key, n]) => n >= 10 && key.startsWith(`${type}\u0000`) && key !== `${type}\u0000${item.metadata.baseColour}`).map(([key]) => key.split('\u0000')[1]);
    if (!colours.length) continue;
    const colour = colours[rng.int(colours.length)];
    done++;
    for (const [i, way] of ways.entries()) {
      const t0 = performance.now();
      const r = await lookalike.searchByImage(item.image, { k: TOP + 1, ...(i ? { text: colour, ...way.options } : {}) });
      if (i === 1) times.push(performance.now() - t0);
      const hits = r.results.filter((h) => h.id !== item.id).slice(0, TOP);
      shares[i] += hits.filter((h) => h.metadata.articleType === type && h.metadata.baseColour === colour).length / TOP;
      typeShares[i] += hits.filter((h) => h.metadata.articleType === type).length / TOP;
    }
  }
  return { queries: done, ways: ways.map((w, i) => ({ name: w.name, share: shares[i] / Math.max(1, done), typeShare: typeShares[i] / Math.max(1, done) })), medianMs: median(times) };
}

/** A way of answering a visit: one of the strategies, or the average with a given weight of dislike. */
export interface RecommendWay { name: string; strategy: RecommendStrategy | 'single'; weight?: number }

export const RECOMMEND_WAYS: readonly RecommendWay[] = [
  { name: 'single liked item (similar)', strategy: 'single' },
  { name: 'average of liked, no dislike', strategy: 'average', weight: 0 },
  { name: 'average - 0.25 x disliked', strategy: 'average', weight: 0.25 },
  { name: 'average - 0.5 x disliked', strategy: 'average', weight: 0.5 },
  { name: 'average - 1 x disliked', strategy: 'average', weight: 1 },
  { name: 'best_score (Qdrant)', strategy: 'best_score' },
  { name: 'sum_scores (Qdrant)', strategy: 'sum_scores' },
];

/**
 * Shopping visits: 3 liked items of one articleType and baseColour, 1 disliked of the same
 * articleType and another colour; per way, the share of the top 10 (examples excluded) with
 * the liked articleType and colour, and for `recommend` (average) its median latency.
 */
export async function measureRecommend(lookalike: Lookalike, visits = 200, seed = 26): Promise<{ visits: number; ways: Array<{ name: string; share: number; dislikedShare: number }>; medianMs: number; singleMs: number }> {
  const rng = new Random(seed);
  const items = lookalike.indexView().items;
  const groups = new Map<string, string[]>();
  for (const item of items) {
    const key = `${item.metadata.articleType}\u0000${item.metadata.baseColour}`;
    groups.set(key, [...(groups.get(key) ?? []), item.id]);
  }
  const byType = new Map<string, string[]>();
  for (const item of items) byType.set(item.metadata.articleType, [...(byType.get(item.metadata.articleType) ?? []), item.id]);
  // Groups big enough that the whole top 10 can be of them, the liked three left out.
  const eligible = [...groups].filter(([key, ids]) => ids.length >= 3 + TOP && (byType.get(key.split('\u0000')[0])?.length ?? 0) > ids.length);
  // A catalog without such groups (a small one) has no visits to measure.
  if (!eligible.length) visits = 0;
  const space = lookalike.space();
  const sums = new Map(RECOMMEND_WAYS.map((w) => [w.name, 0]));
  const dislikedSums = new Map(RECOMMEND_WAYS.map((w) => [w.name, 0]));
  const times: number[] = [], singleTimes: number[] = [];
  const pick = <T>(list: readonly T[]) => list[rng.int(list.length)];
  for (let v = 0; v < visits; v++) {
    const [key, ids] = pick(eligible);
    const [type, colour] = key.split('\u0000');
    const liked = new Set<string>();
    while (liked.size < 3) liked.add(pick(ids));
    const others = byType.get(type)!.filter((id) => lookalike.item(id).metadata.baseColour !== colour);
    const disliked = pick(others);
    const like = [...liked];
    const dislikedColour = lookalike.item(disliked).metadata.baseColour;
    const of = (hits: Array<{ metadata: Record<string, string> }>, c: string) => hits.filter((h) => h.metadata.articleType === type && h.metadata.baseColour === c).length / TOP;
    let dislikedShare = 0;
    // The share with the liked type and colour; on the side, the share with the disliked colour.
    const share = (hits: Array<{ metadata: Record<string, string> }>, weight = 1) => {
      dislikedShare += weight * of(hits, dislikedColour);
      return of(hits, colour);
    };
    const vectors = (list: string[]) => list.map((id) => Float32Array.from(lookalike.indexView().vectorOf(space, id)));
    for (const way of RECOMMEND_WAYS) {
      let s: number;
      dislikedShare = 0;
      if (way.strategy === 'single') {
        // Each liked item alone, as a shopper with one example would search.
        let total = 0;
        for (const id of like) {
          const t0 = performance.now();
          total += share((await lookalike.searchById(id, { k: TOP })).results, 1 / like.length);
          singleTimes.push(performance.now() - t0);
        }
        s = total / like.length;
      } else if (way.strategy === 'average') {
        const q = averageQuery(vectors(like), vectors([disliked]), way.weight);
        s = share(await lookalike.indexView().find(space, q, { k: TOP, excludeIds: [...like, disliked] }));
      } else {
        s = share((await lookalike.recommend({ like: like.map((id) => ({ id })), unlike: [{ id: disliked }], k: TOP, strategy: way.strategy })).results);
      }
      sums.set(way.name, sums.get(way.name)! + s);
      dislikedSums.set(way.name, dislikedSums.get(way.name)! + dislikedShare);
    }
    const t0 = performance.now();
    await lookalike.recommend({ like: like.map((id) => ({ id })), unlike: [{ id: disliked }], k: TOP });
    times.push(performance.now() - t0);
  }
  return { visits, ways: RECOMMEND_WAYS.map((w) => ({ name: w.name, share: sums.get(w.name)! / Math.max(1, visits), dislikedShare: dislikedSums.get(w.name)! / Math.max(1, visits) })), medianMs: median(times), singleMs: median(singleTimes) };
}

/**
 * Scene photos of 2-4 products of different articleTypes (photo/synthetic.ts scenePhoto): per
 * placed product, whether the very product is in the top 10 of the whole photo's results,
 * and of some region's (shop the look); how many regions were proposed; median latencies.
 */
export async function measureShopTheLook(lookalike: Lookalike, scenes = 100, seed = 26, background: 'plain' | 'busy' = 'plain'): Promise<{ background: string; scenes: number; products: number; wholePhoto: number; someRegion: number; eitherList: number; regionsPerScene: number; wholeMs: number; lookMs: number }> {
  const rng = new Random(seed);
  const items = lookalike.indexView().items;
  let products = 0, whole = 0, region = 0, either = 0, regions = 0;
  const wholeTimes: number[] = [], lookTimes: number[] = [];
  for (let s = 0; s < scenes; s++) {
    const count = 2 + rng.int(3);
    const chosen: typeof items[number][] = [];
    while (chosen.length < count) {
      const item = items[rng.int(items.length)];
      if (!chosen.some((c) => c.metadata.articleType === item.metadata.articleType)) chosen.push(item);
    }
    const { jpeg } = await scenePhoto(chosen.map((c) => c.image), seed * 1000 + s, background);
    let t0 = performance.now();
    const single = await lookalike.searchByImage(jpeg, { k: TOP, label: `scene ${s}` });
    wholeTimes.push(performance.now() - t0);
    t0 = performance.now();
    const look = await lookalike.searchByImage(jpeg, { k: TOP, label: `scene ${s}`, shopTheLook: true });
    lookTimes.push(performance.now() - t0);
    regions += look.looks?.length ?? 0;
    const wholeIds = new Set(single.results.map((r) => r.id));
    const regionIds = new Set((look.looks ?? []).flatMap((l) => l.results.map((r) => r.id)));
    for (const c of chosen) {
      products++;
      if (wholeIds.has(c.id)) whole++;
      if (regionIds.has(c.id)) region++;
      if (regionIds.has(c.id) || wholeIds.has(c.id)) either++;
    }
  }
  return { background, scenes, products, wholePhoto: whole / products, someRegion: region / products, eitherList: either / products, regionsPerScene: regions / scenes, wholeMs: median(wholeTimes), lookMs: median(lookTimes) };
}
