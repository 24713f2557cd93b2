/**
 * Copies an index from one store to another (a folder into PostgreSQL, or back), without
 * running the model again: items, vectors, failures, the manifest and the files (head, map).
 * Resumable like `index`: batches are transactions, and items already embedded in the
 * target are skipped, so a copy stopped halfway is finished by running it again.
 */
import { describeLocation, indexArgs } from './location.js';
import { LookalikeError } from '../errors.js';
import { lockStore, openStore, settleStore } from './open.js';
import type { ItemVectors } from './types.js';

const BATCH = 512;

export interface CopyReport { items: number; copied: number; removed: number; seconds: number }

/** `first`: only the first N items (in the source's order), e.g. a sample for a benchmark. */
export async function copyIndex(from: string, to: string, log: (m: string) => void = () => {}, first?: number): Promise<CopyReport> {
  const started = performance.now();
  const source = await openStore(from, { readonly: true });
  try {
    const manifest = source.getManifest();
    if (!manifest) throw new LookalikeError('INDEX_EMPTY', { path: describeLocation(from), args: indexArgs(from) });
    await source.preload?.(['max', 'avg', 'colour']);
    const [max, avg, colour] = (['max', 'avg', 'colour'] as const).map((k) => source.loadMatrix(k));
    const lock = await lockStore(to, 'lookalike copy');
    try {
      const target = await openStore(to, { create: true });
      try {
        await target.setManifest(manifest);
        const items = first === undefined ? source.listItems() : source.listItems().slice(0, first);
        const wanted = new Set(items.map((i) => i.id));
        const stale = target.listItems().filter((i) => !wanted.has(i.id)).map((i) => i.id);
        await target.deleteItems(stale);
        for (let i = 0; i < items.length; i += 5000) await target.upsertItems(items.slice(i, i + 5000));
        for (const name of ['head.lkhead', 'map.json']) {
          const bytes = source.getFile(name);
          if (bytes) await target.putFile(name, bytes);
        }
        const done = target.embeddedIds();
        const sources = await source.imageSources();
        const rows = max.ids.map((id, r) => ({ id, r })).filter(({ id }) => wanted.has(id) && !done.has(id));
        const row = (m: typeof max, r: number) => m.data.slice(r * m.dim, (r + 1) * m.dim);
        for (let b = 0; b < rows.length; b += BATCH) {
          const batch: ItemVectors[] = rows.slice(b, b + BATCH).map(({ id, r }) => ({ id, max: row(max, r), avg: row(avg, r), colour: row(colour, r), source: sources.get(id) }));
          await target.putVectors(batch, b === 0 ? source.failures().filter((f) => wanted.has(f.id)) : []);
          log(`copy: ${Math.min(b + BATCH, rows.length)}/${rows.length} vectors`);
        }
        if (!rows.length && source.failures().length) await target.putVectors([], source.failures().filter((f) => wanted.has(f.id)));
        settleStore(target);
        return { items: items.length, copied: rows.length, removed: stale.length, seconds: (performance.now() - started) / 1000 };
      } finally {
        await target.close();
      }
    } finally {
      await lock.release();
    }
  } finally {
    await source.close();
  }
}
