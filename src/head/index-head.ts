/**
 * A head inside an index: the file `head.lkhead` stored with the index (in its folder, or
 * in the shared store's files table), named by the manifest's `extensions.head`; and the
 * search spaces it gives a Lookalike.
 *
 * The catalog's embedding under a head is computed in batches (onnxruntime) when an index
 * is opened, then cached as `cache/head-<head id>-g<store generation>.f32`, so that a CLI
 * query after the first costs a file read. Items added later change the generation and
 * are projected on the next open: the head works from the stored raw vectors, the CNN is
 * never re-run.
 */
import { describeLocation, indexArgs } from '../store/location.js';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { INDEX_FILES } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import { imageFingerprint, type EmbeddingSettings } from '../model/registry.js';
import type { IndexManifest, Store } from '../store/types.js';
import type { SearchEngine } from '../search/engine.js';
import { loadRawVectors, type EmbeddingSpace, type RawVectors } from '../search/space.js';
import { photoBlendSpace } from '../photo/search.js';
import { openStore } from '../store/open.js';
import { backboneKey, decodeHead, encodeHead, readHeadFile, recentredHead, type Head, type Mode } from './head.js';

export const HEAD_FILE = INDEX_FILES.head;

/** What the manifest records about the index's head. */
export interface HeadRef {
  file: string;
  id: string;
  defaultMode: Mode;
  labels: string[];
  trainedAt: string;
  /** The catalog the head learnt from (another one when attached with `index --head`). */
  trainedOn: string;
  holdout: number;
}

export function headRefOf(manifest: IndexManifest | undefined): HeadRef | undefined {
  const ref = manifest?.extensions?.head as HeadRef | undefined;
  return ref && typeof ref.file === 'string' ? ref : undefined;
}

/** Refuses a head whose raw vectors would come from another backbone or image preparation. */
export function checkHeadFits(head: Head, weightsId: string, settings: EmbeddingSettings, label: string): void {
  const indexed = backboneKey(weightsId, imageFingerprint(settings));
  const trained = backboneKey(head.meta.backbone.weightsId, head.meta.backbone.fingerprint);
  if (indexed !== trained) throw new LookalikeError('HEAD_MISMATCH', { path: label, trained, indexed });
}

function refFor(head: Head): HeadRef {
  return {
    file: HEAD_FILE,
    id: head.id,
    defaultMode: head.meta.defaultMode,
    labels: head.meta.tasks.map((t) => t.column),
    trainedAt: head.meta.trained.at,
    trainedOn: head.meta.trained.catalog,
    holdout: head.meta.holdout.fraction,
  };
}

/**
 * `index --head FILE`: reads and checks the head against the index's backbone, stores it
 * with the index and returns the manifest entry. Nothing is written on refusal.
 */
export async function adoptHeadFile(file: string, store: Store, weightsId: string, settings: EmbeddingSettings): Promise<HeadRef> {
  const head = readHeadFile(file);
  checkHeadFits(head, weightsId, settings, file);
  await store.putFile(HEAD_FILE, encodeHead(head));
  return refFor(head);
}

/**
 * `index --head FILE`, once the catalog is embedded: the index's head, trained on another
 * catalog, is re-centred on this one's stored vectors (head.ts recentredHead) and stored in
 * its place. Returns the new manifest entry, or undefined when the index has no head or
 * fewer than 2 embedded items.
 */
export async function recentreIndexHead(store: Store): Promise<HeadRef | undefined> {
  const manifest = store.getManifest();
  const head = manifest && loadIndexHead(store, manifest);
  if (!manifest || !head || store.count().embedded < 2) return undefined;
  return storeHead(store, manifest, recentredHead(head, (await loadRawVectors(store)).raw));
}

/** Writes `head` as the index's head and points the manifest at it. */
async function storeHead(store: Store, manifest: IndexManifest, head: Head): Promise<HeadRef> {
  await store.putFile(HEAD_FILE, encodeHead(head));
  const ref = refFor(head);
  await store.setManifest({ ...manifest, extensions: { ...manifest.extensions, head: ref }, updatedAt: new Date().toISOString() });
  return ref;
}

/** Makes `head` the index's embedding (the store must be writable). */
export async function installHead(location: string, head: Head): Promise<HeadRef> {
  const store = await openStore(location);
  try {
    const manifest = store.getManifest();
    if (!manifest) throw new LookalikeError('INDEX_EMPTY', { path: describeLocation(location), args: indexArgs(location) });
    checkHeadFits(head, manifest.weightsId, manifest.settings, 'the new head');
    return await storeHead(store, manifest, head);
  } finally {
    await store.close();
  }
}

/** Back to plain backbone features: forgets the head. Returns whether there was one. */
export async function removeHead(location: string): Promise<boolean> {
  const store = await openStore(location);
  try {
    const manifest = store.getManifest();
    const had = !!headRefOf(manifest);
    if (manifest && had) {
      const extensions = { ...manifest.extensions };
      delete extensions.head;
      await store.setManifest({ ...manifest, extensions, updatedAt: new Date().toISOString() });
    }
    await store.deleteFile(HEAD_FILE);
    if (store.folder) removeHeadCaches(store.folder);
    return had;
  } finally {
    await store.close();
  }
}

/** The index's head, as stored with it (undefined when it has none). */
export function loadIndexHead(store: Store, manifest: IndexManifest): Head | undefined {
  const ref = headRefOf(manifest);
  if (!ref) return undefined;
  const label = store.folder ? path.join(store.folder, path.basename(ref.file)) : `${path.basename(ref.file)} in the store`;
  const bytes = store.getFile(path.basename(ref.file));
  if (!bytes) throw new LookalikeError('HEAD_UNREADABLE', { path: label, reason: 'no such file' });
  const head = decodeHead(bytes, label);
  checkHeadFits(head, manifest.weightsId, manifest.settings, label);
  return head;
}

function removeHeadCaches(indexDir: string, keep?: string): void {
  const dir = path.join(indexDir, INDEX_FILES.cache);
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) if (f.startsWith('head-') && f !== keep) rmSync(path.join(dir, f), { force: true });
}

/**
 * The spaces of an opened index with a head: one per mode, over the catalog's two parts
 * computed once. `space(mode).embed(raw)` takes the cached catalog parts when `raw` is the
 * engine's own catalog, and projects anything else (a query photo) in plain JS.
 */
export class HeadSpaces {
  private style?: Float32Array;
  private colour?: Float32Array;
  private readonly spaces = new Map<Mode, EmbeddingSpace>();
  private readonly photoSpaces = new Map<string, EmbeddingSpace>();

  private constructor(readonly head: Head, private readonly store: Store, private readonly engine: SearchEngine) {}

  /** The head spaces of an index, or undefined when the index has no head. */
  static async open(manifest: IndexManifest, store: Store, engine: SearchEngine): Promise<HeadSpaces | undefined> {
    const head = loadIndexHead(store, manifest);
    if (!head) return undefined;
    const spaces = new HeadSpaces(head, store, engine);
    await spaces.prepareCatalog();
    return spaces;
  }

  private async prepareCatalog(): Promise<void> {
    const n = this.engine.size;
    const sd = this.head.meta.net.styleDim, cd = this.head.colourDim;
    const name = `head-${this.head.id}-g${this.engine.generation}.f32`;
    // A shared store has no folder: each replica projects the catalog in memory.
    const folder = this.store.folder;
    const file = folder && path.join(folder, INDEX_FILES.cache, name);
    if (file && existsSync(file)) {
      const bytes = await readFile(file);
      if (bytes.byteLength === n * (sd + cd) * 4) {
        const all = new Float32Array(n * (sd + cd));
        Buffer.from(all.buffer).set(bytes);
        this.style = all.subarray(0, n * sd);
        this.colour = all.subarray(n * sd);
        return;
      }
    }
    const parts = await this.head.embedParts(this.engine.rawVectors());
    this.style = parts.style;
    this.colour = parts.colour;
    if (!file || !folder) return;
    try {
      await mkdir(path.dirname(file), { recursive: true });
      const all = new Float32Array(n * (sd + cd));
      all.set(parts.style);
      all.set(parts.colour, n * sd);
      await writeFile(`${file}.tmp`, all);
      await rename(`${file}.tmp`, file);
      removeHeadCaches(folder, name);
    } catch { /* read-only index folder: recomputed on the next open */ }
  }

  /** The space photos (not catalog items) are searched in for `mode` (photo/search.ts PHOTO_BLEND), made once. */
  photoSpace(modeName?: string): EmbeddingSpace {
    const key = `photo:${this.head.mode(modeName)}`;
    let space = this.photoSpaces.get(key);
    if (!space) {
      space = photoBlendSpace(this.space(modeName), this.head.meta.features.backboneDim);
      this.photoSpaces.set(key, space);
    }
    return space;
  }

  space(modeName?: string): EmbeddingSpace {
    const mode = this.head.mode(modeName);
    let space = this.spaces.get(mode);
    if (!space) {
      const head = this.head;
      space = {
        id: `head:${head.id}:${mode}`,
        dim: head.dim(mode),
        embed: (raw: RawVectors) => {
          if (raw.n === this.engine.size && this.style && this.colour && raw === this.engine.rawVectors()) {
            return head.combine(this.style, this.colour, raw.n, mode);
          }
          return embedSync(head, raw, mode);
        },
      };
      this.spaces.set(mode, space);
    }
    return space;
  }
}

/** Any raw vectors in plain JS, row by row (queries; small batches). */
export function embedSync(head: Head, raw: RawVectors, mode: Mode): Float32Array {
  const dim = head.dim(mode);
  const out = new Float32Array(raw.n * dim);
  for (let r = 0; r < raw.n; r++) {
    const { style, colour } = head.embedPartsOne(raw, r);
    out.set(head.combine(style, colour, 1, mode), r * dim);
  }
  return out;
}
