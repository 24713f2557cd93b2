/**
 * A colour descriptor of the product, for the "colour" notion of similarity: global max
 * pooling over a 7x7 grid washes colour out of CNN features, so we keep a small CIELAB
 * histogram of the foreground pixels (catalog photos are shot on white), computed from
 * the image already decoded for the network.
 *
 * 4 (L) x 6 (a) x 6 (b) = 144 bins with trilinear soft assignment, so that near colours
 * share mass; square-rooted (Hellinger) and L2-normalised so cosine similarity compares them.
 *
 * One histogram for both sides: every catalog item's at indexing (image/prepare.ts), and a
 * shopper's photo's counting only the pixels under the product's cells (`cells`,
 * photo/vectors.ts), so that the two compare.
 */
export const COLOUR_BINS = { l: 4, a: 6, b: 6 } as const;
export const COLOUR_DIMENSION = COLOUR_BINS.l * COLOUR_BINS.a * COLOUR_BINS.b;

const SRGB_TO_LINEAR = new Float64Array(256);
for (let i = 0; i < 256; i++) {
  const c = i / 255;
  SRGB_TO_LINEAR[i] = c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/** sRGB bytes to CIELAB (D65). */
export function rgbToLab(r: number, g: number, b: number): [number, number, number] {
  const lr = SRGB_TO_LINEAR[r], lg = SRGB_TO_LINEAR[g], lb = SRGB_TO_LINEAR[b];
  const x = (0.4124564 * lr + 0.3575761 * lg + 0.1804375 * lb) / 0.95047;
  const y = 0.2126729 * lr + 0.7151522 * lg + 0.072175 * lb;
  const z = (0.0193339 * lr + 0.119192 * lg + 0.9503041 * lb) / 1.08883;
  const f = (t: number) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);
  const fx = f(x), fy = f(y), fz = f(z);
  return [116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)];
}

/**
 * A pixel is background when it is near-white, as on catalog photos (also the packshot
 * test of a shopper's photo, photo/vectors.ts whiteBorderShare).
 */
export function isWhiteBackground(r: number, g: number, b: number): boolean {
  return r > 235 && g > 235 && b > 235;
}

/**
 * Which cells of a coarse grid over the image hold the product (photo/localise.ts): pixels
 * outside them are background even when they are not white (a shopper's photo).
 */
export interface CellMask { mask: Uint8Array; gridW: number; gridH: number }

export function colourHistogram(rgb: Uint8Array, width: number, height: number, cells?: CellMask): Float32Array {
  const hist = new Float64Array(COLOUR_DIMENSION);
  const step = Math.max(1, Math.round(Math.sqrt((width * height) / 6000))); // ~6k samples is plenty
  const inside = cells ? cellTest(cells, width, height) : undefined;
  let counted = accumulate(rgb, width, height, step, hist, true, inside);
  // A photo that is almost all white (a white shirt on white) has no usable mask: use every pixel.
  if (counted < (width * height) / (step * step) * 0.03) counted = accumulate(rgb, width, height, step, hist, false, inside);
  const out = new Float32Array(COLOUR_DIMENSION);
  let norm = 0;
  for (let i = 0; i < COLOUR_DIMENSION; i++) {
    const v = Math.sqrt(hist[i] / Math.max(counted, 1));
    out[i] = v;
    norm += v * v;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < COLOUR_DIMENSION; i++) out[i] /= norm;
  return out;
}

function cellTest(cells: CellMask, width: number, height: number): (x: number, y: number) => boolean {
  return (x, y) => cells.mask[Math.min(cells.gridH - 1, Math.floor((y * cells.gridH) / height)) * cells.gridW + Math.min(cells.gridW - 1, Math.floor((x * cells.gridW) / width))] === 1;
}

function accumulate(
  rgb: Uint8Array, width: number, height: number, step: number, hist: Float64Array, maskBackground: boolean,
  inside?: (x: number, y: number) => boolean,
): number {
  hist.fill(0);
  const { l: nl, a: na, b: nb } = COLOUR_BINS;
  let counted = 0;
  for (let y = 0; y < height; y += step) {
    for (let x = 0; x < width; x += step) {
      const i = (y * width + x) * 3;
      const r = rgb[i], g = rgb[i + 1], b = rgb[i + 2];
      if (maskBackground && isWhiteBackground(r, g, b)) continue;
      if (inside && !inside(x, y)) continue;
      const [L, A, B] = rgbToLab(r, g, b);
      // Continuous bin coordinates, bin centres at integers.
      const cl = clamp((L / 100) * nl - 0.5, 0, nl - 1);
      const ca = clamp(((A + 60) / 120) * na - 0.5, 0, na - 1);
      const cb = clamp(((B + 60) / 120) * nb - 0.5, 0, nb - 1);
      const l0 = Math.floor(cl), a0 = Math.floor(ca), b0 = Math.floor(cb);
      const fl = cl - l0, fa = ca - a0, fb = cb - b0;
      for (let dl = 0; dl < 2; dl++) {
        const wl = dl ? fl : 1 - fl;
        const li = Math.min(l0 + dl, nl - 1);
        for (let da = 0; da < 2; da++) {
          const wa = da ? fa : 1 - fa;
          const ai = Math.min(a0 + da, na - 1);
          for (let db = 0; db < 2; db++) {
            const wb = db ? fb : 1 - fb;
            const bi = Math.min(b0 + db, nb - 1);
            hist[(li * na + ai) * nb + bi] += wl * wa * wb;
          }
        }
      }
      counted++;
    }
  }
  return counted;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
