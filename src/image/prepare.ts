/**
 * Decoding and preparing images for the backbone: one sharp pipeline decodes, orients,
 * flattens transparency onto white, resizes, and hands back raw RGB; from it we build the
 * network's input tensor (Keras "caffe" preprocessing) and the colour descriptor.
 */
import sharp from 'sharp';
import { MAX_PIXELS } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import type { ResizeMode } from '../model/registry.js';
import { colourHistogram } from './colour.js';

export const ACCEPTED_FORMATS = ['jpeg', 'png', 'webp'] as const;
/** 40 megapixels: far above any product photo, far below what would exhaust memory. */
export const DEFAULT_MAX_PIXELS = MAX_PIXELS;

export interface PrepareOptions {
  width: number;
  height: number;
  resize: ResizeMode;
  channelOrder: 'BGR' | 'RGB';
  channelMeans: [number, number, number];
  maxPixels?: number;
  /** Name used in error messages (a path, "the upload", ...). */
  label?: string;
}

export interface PreparedImage {
  /** 3 x height x width, channel order and mean subtraction applied */
  tensor: Float32Array;
  /** colour descriptor of the product's foreground, see colour.ts */
  colour: Float32Array;
  source: { width: number; height: number; format: string };
}

/** Cheap header check: format sniffed from the bytes and pixel count, before decoding. */
export async function inspectImage(input: string | Buffer, label: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<{ width: number; height: number; format: string }> {
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>["metadata"]>>;
  try {
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw toImageError(err, label);
  }
  const format = meta.format ?? 'unknown';
  if (!(ACCEPTED_FORMATS as readonly string[]).includes(format)) {
    throw new LookalikeError('IMAGE_UNSUPPORTED', { what: label, detected: format });
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width * height > maxPixels) {
    throw new LookalikeError('IMAGE_TOO_LARGE', { what: label, width, height, limit: maxPixels.toLocaleString('en-US') });
  }
  return { width, height, format };
}

export async function prepareImage(input: string | Buffer, opts: PrepareOptions): Promise<PreparedImage> {
  const label = opts.label ?? (typeof input === 'string' ? input : 'the image');
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const source = await inspectImage(input, label, maxPixels);
  let raw: Buffer;
  try {
    raw = await sharp(input, { failOn: 'truncated', limitInputPixels: maxPixels })
      .rotate()
      .flatten({ background: '#ffffff' })
      .resize(opts.width, opts.height, {
        fit: opts.resize === 'stretch' ? 'fill' : opts.resize === 'pad' ? 'contain' : 'cover',
        background: '#ffffff',
        // Bilinear, as OpenCV's default resize in the reference design.
        kernel: 'linear',
      })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer();
  } catch (err) {
    throw toImageError(err, label);
  }
  return { tensor: rgbToTensor(raw, opts), colour: colourHistogram(raw, opts.width, opts.height), source };
}

function rgbToTensor(rgb: Uint8Array, opts: PrepareOptions): Float32Array {
  const plane = opts.width * opts.height;
  const tensor = new Float32Array(3 * plane);
  const [m0, m1, m2] = opts.channelMeans;
  // Output channel c reads input channel order[c]: BGR for Keras caffe-style models.
  const [c0, c1, c2] = opts.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  for (let p = 0, i = 0; p < plane; p++, i += 3) {
    tensor[p] = rgb[i + c0] - m0;
    tensor[plane + p] = rgb[i + c1] - m1;
    tensor[2 * plane + p] = rgb[i + c2] - m2;
  }
  return tensor;
}

function toImageError(err: unknown, label: string): LookalikeError {
  if (err instanceof LookalikeError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/Input file is missing|ENOENT/i.test(message)) return new LookalikeError('IMAGE_NOT_FOUND', { path: label }, { cause: err });
  if (/unsupported image format|bad seek|Input buffer is empty|Input file contains unsupported/i.test(message)) {
    return new LookalikeError('IMAGE_UNSUPPORTED', { what: label, detected: 'unknown' }, { cause: err });
  }
  if (/pixel limit/i.test(message)) return new LookalikeError('IMAGE_TOO_LARGE', { what: label, width: '?', height: '?', limit: DEFAULT_MAX_PIXELS }, { cause: err });
  return new LookalikeError('IMAGE_CORRUPT', { what: label, reason: message.split('\n')[0] }, { cause: err });
}
