/**
 * The vectors of one index's rows: the raw stored ones (both poolings and the colour
 * descriptor), each kind loaded on first use, and per embedding space the contiguous
 * normalised matrix computed from them, once per space.
 */
import type { Store, VectorKind, VectorMatrix } from '../store/types.js';
import type { EmbeddingSpace, RawVectors } from './space.js';

export interface SpaceMatrix { space: EmbeddingSpace; data: Float32Array; dim: number }

export class SpaceVectors {
  private raw?: RawVectors;
  private readonly matrices = new Map<string, SpaceMatrix>();

  /** `size`: the rows (the item table's size). */
  constructor(private readonly store: Store, private readonly size: number) {}

  /**
   * Raw stored vectors of every row. Each kind loads on first use only (256 MB per pooling
   * for the dev catalog), so a server searching max-pooled vectors never holds the
   * average-pooled ones.
   */
  rawVectors(): RawVectors {
    if (!this.raw) {
      const store = this.store;
      const loaded: Partial<Record<VectorKind, VectorMatrix>> = {};
      const load = (kind: VectorKind) => (loaded[kind] ??= store.loadMatrix(kind));
      this.raw = {
        n: this.size,
        get max() { return load('max').data; },
        get avg() { return load('avg').data; },
        get colour() { return load('colour').data; },
        get dim() { return load('max').dim; },
        get colourDim() { return load('colour').dim; },
      };
    }
    return this.raw;
  }

  /** Loads these kinds of raw vectors now rather than on first use. */
  pin(kinds: VectorKind[]): void {
    const raw = this.rawVectors();
    for (const kind of kinds) void raw[kind];
  }

  /** The rows' matrix in a space, computed once per space. */
  matrix(space: EmbeddingSpace): SpaceMatrix {
    let m = this.matrices.get(space.id);
    if (!m) {
      m = { space, data: space.embed(this.rawVectors()), dim: space.dim };
      this.matrices.set(space.id, m);
    }
    return m;
  }

  /** A space's matrix when it is already in memory (never computes it). */
  held(space: EmbeddingSpace): SpaceMatrix | undefined {
    return this.matrices.get(space.id);
  }

  /** A row's vector in a space (a view into the space's matrix). */
  row(space: EmbeddingSpace, row: number): Float32Array {
    const { data, dim } = this.matrix(space);
    return data.subarray(row * dim, (row + 1) * dim);
  }

  /** The spaces whose matrix is held in memory. */
  heldSpaces(): string[] {
    return [...this.matrices.keys()];
  }

  /** Drops the matrices (after the space definitions change, e.g. a new head). */
  forget(): void {
    this.matrices.clear();
  }
}
