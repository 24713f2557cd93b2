/**
 * Checks of the values a caller hands in (k, threshold, filters, mode, input size), done
 * where the library is entered, so a program gets the same error codes as the CLI and the
 * API (BAD_OPTION, BAD_FILTER) instead of an empty result or a crash deep inside. Modelled
 * on sharp's lib/is.js: one helper builds every "expected X for Y but received Z" error.
 * Only errors.ts and defaults.ts are imported, so every layer may use it.
 */
import { MAX_K } from './defaults.js';
import { LookalikeError } from './errors.js';

/** The most neighbours one search may ask for (defaults.ts; the HTTP API allows fewer, MAX_K_HTTP). */
export { MAX_K };
/** Network input sides, pixels: below 32 ResNet's feature map vanishes, above 1024 memory does. */
export const MIN_INPUT_SIDE = 32;
export const MAX_INPUT_SIDE = 1024;

/** A BAD_OPTION error in one shape: what the parameter must be, and what it was. */
export function invalidParameterError(name: string, expected: string, actual: unknown): LookalikeError {
  return new LookalikeError('BAD_OPTION', { message: `${name} must be ${expected}, not ${shown(actual)}.` });
}

function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) return String(value);
  return `a${Array.isArray(value) ? 'n array' : 'n object'}`;
}

export function isInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value);
}

/** k, the number of neighbours: a whole number from 1 to `max`. */
export function checkK(k: unknown, name = 'k', max = MAX_K): number {
  if (!isInteger(k) || k < 1 || k > max) throw invalidParameterError(name, `a whole number from 1 to ${max}`, k);
  return k;
}

/** A count or size: a whole number of at least `min` (undefined: the default). */
export function checkPositiveInteger(value: unknown, name: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!isInteger(value) || value < min) throw invalidParameterError(name, `a whole number of at least ${min}`, value);
  return value;
}

/** A cosine threshold: a finite number from -1 to 1 (undefined: none). */
export function checkThreshold(threshold: unknown, name = 'threshold'): number | undefined {
  if (threshold === undefined) return undefined;
  if (typeof threshold !== 'number' || !Number.isFinite(threshold) || threshold < -1 || threshold > 1) {
    throw invalidParameterError(name, 'a number from -1 to 1 (a cosine similarity)', threshold);
  }
  return threshold;
}

/** One of `known` (case ignored, "color" taken for "colour"); undefined stays undefined. */
export function checkChoice(value: unknown, name: string, known: readonly string[]): string | undefined {
  if (value === undefined) return undefined;
  const wanted = typeof value === 'string' ? value.toLowerCase().replace(/^color$/, 'colour') : undefined;
  if (wanted === undefined || !known.includes(wanted)) throw invalidParameterError(name, `one of ${known.join(', ')}`, value);
  return wanted;
}

/** Filters as the library takes them: { field: [values] }, every value a string. */
export function checkFilters(filters: unknown): Record<string, string[]> | undefined {
  if (filters === undefined) return undefined;
  if (typeof filters !== 'object' || filters === null || Array.isArray(filters)) {
    throw new LookalikeError('BAD_FILTER', { filter: shown(filters) });
  }
  for (const [field, values] of Object.entries(filters)) {
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) {
      throw new LookalikeError('BAD_FILTER', { filter: `${field}=${shown(values)}` });
    }
  }
  return filters as Record<string, string[]>;
}

/** The network input size, each side from MIN_INPUT_SIDE to MAX_INPUT_SIDE pixels. */
export function checkInputSize(width: unknown, height: unknown): void {
  for (const [name, side] of [['width', width], ['height', height]] as const) {
    if (side !== undefined && (!isInteger(side) || side < MIN_INPUT_SIDE || side > MAX_INPUT_SIDE)) {
      throw invalidParameterError(`the input ${name} (--size)`, `a whole number of pixels from ${MIN_INPUT_SIDE} to ${MAX_INPUT_SIDE}, e.g. 224x224`, side);
    }
  }
}

/**
 * Smallest side of a crop, relative to the photo: under a pixel of a 1000-pixel photo. Not
 * larger: a region proposed inside a small drawn box (the page draws boxes from 0.05, the
 * feature map's cells are 1/7 of the input) must still be a crop a client can send back.
 */
export const MIN_CROP_SIDE = 0.001;
/** How far x+w (y+h) may pass 1 and be taken for a rounding overshoot (the box is then cut at the edge). */
const CROP_OVERSHOOT = 0.01;

/** A crop as the library takes it: the part of a photo, relative to it. */
export interface CropBox { x: number; y: number; w: number; h: number }

/**
 * The one check of a crop, whoever sends it (the library's callers, `--crop`, the API's
 * `crop` field): four finite numbers, each from 0 to 1, w and h at least MIN_CROP_SIDE, the
 * box inside the photo. A box that passes the edge by a rounding overshoot is cut at it.
 */
export function checkRegion(value: unknown): CropBox {
  const box = value as Partial<Record<'x' | 'y' | 'w' | 'h', unknown>> | null;
  const fields = ['x', 'y', 'w', 'h'] as const;
  if (typeof box !== 'object' || box === null || Array.isArray(box)) throw badCrop(shown(value));
  const missing = fields.filter((f) => box[f] === undefined);
  if (missing.length) throw badCrop(`no ${missing.join(', ')}`);
  for (const f of fields) {
    const v = box[f];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw badCrop(`${f} = ${shown(v)}`);
    if (v < 0 || v > 1) throw badCrop(`${f} = ${v}`);
  }
  const { x, y, w, h } = box as CropBox;
  if (x + w > 1 + CROP_OVERSHOOT || y + h > 1 + CROP_OVERSHOOT) throw badCrop(`a box reaching ${x + w} x ${y + h}, outside the photo`);
  // Cut at the edge first: what is left must still be a box.
  const inside = { x, y, w: Math.min(w, 1 - x), h: Math.min(h, 1 - y) };
  if (inside.w < MIN_CROP_SIDE || inside.h < MIN_CROP_SIDE) throw badCrop(`a box of ${w} x ${h}${inside.w !== w || inside.h !== h ? ` at ${x}, ${y}` : ''}`);
  return inside;
}

/** "x,y,w,h" as written on a command line or in a form: plain decimal numbers only (no hex, no blanks). */
const CROP_NUMBER = /^\s*(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

export function parseCrop(text: unknown): CropBox {
  if (typeof text !== 'string') throw badCrop(shown(text));
  const parts = text.split(',');
  if (parts.length !== 4 || !parts.every((p) => CROP_NUMBER.test(p))) throw badCrop(shown(text));
  const [x, y, w, h] = parts.map(Number);
  return checkRegion({ x, y, w, h });
}

function badCrop(got: string): LookalikeError {
  return new LookalikeError('BAD_CROP', { got, min: MIN_CROP_SIDE });
}
