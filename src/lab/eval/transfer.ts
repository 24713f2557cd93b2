/**
 * Does a head trained on one catalog help on a catalog of another kind that it never saw?
 * `lookalike transfer` makes such a catalog from the index's own held-out items (the share
 * its head never trained on): each photo shrunk to a small greyscale thumbnail (28x28 by
 * default, the size of Fashion-MNIST), with the item's labels. That catalog is indexed with
 * the index's settings, the index's head is attached to it (not retrained, its inputs
 * re-centred on the new catalog as any head carried to another catalog is: head.ts
 * recentredHead), and leave-one-out kNN accuracy and precision@k are compared: plain
 * backbone against every mode of the head, and the default mode as trained (not
 * re-centred). A head that only learnt the dev catalog's packshots loses here.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { stringify } from 'csv-stringify/sync';
import { DEFAULT_K } from '../../defaults.js';
import { LookalikeError } from '../../errors.js';
import { MODES, type Mode } from '../../head/head.js';
import { headRefOf, installHead, recentreIndexHead } from '../../head/index-head.js';
import { openStore } from '../../store/open.js';
import { buildIndex, type IndexProgress } from '../../indexing/build.js';
import { Lookalike } from '../../lookalike.js';
import { storedSettings } from '../../model/registry.js';
import { evaluateIndex, resolveAttributes } from './evaluate-index.js';
import { idHashUnit, isHeldOut } from '../../catalog/split.js';
import { QUERY_HOLDOUT } from './robustness.js';

export interface TransferOptions {
  /** Held-out items made into the other catalog (at most; fewer when the hold-out is smaller). */
  items?: number;
  /** Side of the square thumbnails, in pixels. */
  size?: number;
  /**
   * Keep the photos' colour: a control, a catalog of the dev catalog's own kind (only
   * reframed to a square), on which re-centring should change little.
   */
  colour?: boolean;
  attributes?: string[];
  k?: number;
  /** Where the other catalog and its index go (a temporary folder, removed, by default). */
  workDir?: string;
  log?: (m: string) => void;
  onProgress?: (stage: 'thumbnails' | 'indexing', done: number, total: number) => void;
}

export interface TransferRow {
  /** plain, or head <mode> */
  space: string;
  attribute: string;
  knnAccuracy: number;
  precisionAtK: number;
}

export interface TransferResult {
  items: number;
  size: number;
  colour: boolean;
  k: number;
  rows: TransferRow[];
  seconds: number;
}

export async function evaluateTransfer(lookalike: Lookalike, options: TransferOptions = {}): Promise<TransferResult> {
  const started = performance.now();
  const head = lookalike.head;
  if (!head) throw new LookalikeError('BAD_OPTION', { message: 'this index has no head to compare with plain features: run `lookalike train` first.' });
  const n = options.items ?? 2000, size = options.size ?? 28, k = options.k ?? DEFAULT_K;
  const log = options.log ?? (() => {});
  const attributes = resolveAttributes(lookalike.manifest.catalog.columns, options.attributes);
  const holdout = headRefOf(lookalike.manifest)?.holdout ?? QUERY_HOLDOUT;
  // The head's hold-out items, in the order of their id hash: always the same ones.
  const items = lookalike.indexView().items.filter((i) => isHeldOut(i.id, holdout))
    .sort((a, b) => idHashUnit(a.id) - idHashUnit(b.id)).slice(0, n);
  if (items.length < 2 * k) throw new LookalikeError('BAD_OPTION', { message: `only ${items.length} items are held out from the head's training: too few for k = ${k}.` });
  const work = options.workDir ?? mkdtempSync(path.join(os.tmpdir(), 'lookalike-transfer-'));
  try {
    const catalog = path.join(work, 'catalog');
    mkdirSync(path.join(catalog, 'images'), { recursive: true });
    for (let i = 0; i < items.length; i++) {
      // Greyscale, then shrunk to fit the square on white (the catalog's own background).
      const photo = sharp(items[i].image);
      await (options.colour ? photo : photo.greyscale()).resize(size, size, { fit: 'contain', background: '#ffffff' }).flatten({ background: '#ffffff' })
        .png().toFile(path.join(catalog, 'images', `${items[i].id}.png`));
      if (i % 50 === 0 || i === items.length - 1) options.onProgress?.('thumbnails', i + 1, items.length);
    }
    writeFileSync(path.join(catalog, 'styles.csv'), stringify([['id', ...attributes], ...items.map((i) => [i.id, ...attributes.map((a) => i.metadata[a] ?? '')])]));
    const indexDir = path.join(work, 'index');
    log(`indexing ${items.length} ${size}x${size} ${options.colour ? 'colour' : 'greyscale'} thumbnails with the index's settings`);
    await buildIndex({
      catalogDir: catalog, indexDir, settings: storedSettings(lookalike.settings),
      // The same int8 model as the index: its calibration, not one measured on thumbnails.
      embedder: await lookalike.backbone(),
      onProgress: (p: IndexProgress) => options.onProgress?.('indexing', p.done, p.total),
    });
    const spaces: Array<{ label: string; mode?: Mode }> = [{ label: 'plain' }, ...MODES.map((mode) => ({ label: `head ${mode}${mode === head.head.meta.defaultMode ? ' (default)' : ''}`, mode }))];
    const measure = async (other: Lookalike, picked: typeof spaces, suffix = ''): Promise<TransferRow[]> => {
      const rows: TransferRow[] = [];
      for (const s of picked) {
        // pooling 'max' is the plain backbone, as `lookalike eval --pooling max` on a head's index.
        const result = await evaluateIndex(other, { k, attributes, ...(s.mode ? { mode: s.mode } : { pooling: 'max' as const }) });
        for (const a of result.attributes) rows.push({ space: s.label + suffix, attribute: a.attribute, knnAccuracy: a.knnAccuracy, precisionAtK: a.precisionAtK });
      }
      return rows;
    };
    // The head as trained first (its inputs centred on the dev catalog), then re-centred on
    // the thumbnails by what `index --head` runs once a catalog is embedded.
    await installHead(indexDir, head.head);
    let asTrainedRows: TransferRow[];
    const asTrained = await Lookalike.open(indexDir, { readonly: true });
    try {
      asTrainedRows = await measure(asTrained, spaces.filter((s) => s.mode === head.head.meta.defaultMode), ', as trained');
    } finally {
      await asTrained.close();
    }
    const store = await openStore(indexDir);
    try {
      await recentreIndexHead(store);
    } finally {
      await store.close();
    }
    const other = await Lookalike.open(indexDir, { readonly: true });
    try {
      const rows = [...await measure(other, spaces), ...asTrainedRows];
      return { items: items.length, size, colour: !!options.colour, k, rows, seconds: (performance.now() - started) / 1000 };
    } finally {
      await other.close();
    }
  } finally {
    if (!options.workDir) rmSync(work, { recursive: true, force: true });
  }
}
