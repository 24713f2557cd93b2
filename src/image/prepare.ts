/**
 * Decoding and preparing images for the backbone: one sharp pipeline decodes, orients,
 * flattens transparency onto white, resizes, and hands back raw RGB; from it we build the
 * network's input tensor (Keras "caffe" preprocessing) and the colour descriptor.
 */
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import { MAX_PIXELS } from '../defaults.js';
import { LookalikeError } from '../errors.js';
import type { ResizeMode } from '../model/registry.js';
import { colourHistogram } from './colour.js';
import type { CropBox } from '../validate.js';
import { isAccepted, readHead, sniffFormat } from './sniff.js';

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
  /** Only this part of the photo (relative x, y, w, h), e.g. the box a shopper drew. */
  crop?: CropBox;
  /** The header inspectImage read already, for these very bytes and limit: not read again. */
  source?: ImageSource;
}

/** What a photo's header says: its size and format sniffed from the bytes (inspectImage). */
export interface ImageSource { width: number; height: number; format: string }

export interface PreparedImage {
  /** 3 x height x width, channel order and mean subtraction applied */
  tensor: Float32Array;
  /** colour descriptor of the product's foreground, see colour.ts */
  colour: Float32Array;
  /** The resized RGB pixels the tensor was built from (width x height x 3). */
  rgb: Uint8Array;
  source: ImageSource;
  /** Damage the decoder worked around (the photo was still usable), in plain words. */
  warnings: string[];
}

/** Cheap header check: format sniffed from the bytes and pixel count, before decoding. */
export async function inspectImage(input: string | Buffer, label: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<ImageSource> {
  const kind = typeof input === 'string'
    ? await stat(input).then((s) => (s.isDirectory() ? 'folder' : !s.isFile() ? 'special' : s.size === 0 ? 'empty' : 'file'), () => 'missing')
    : 'bytes';
  if (kind === 'folder') throw new LookalikeError('IMAGE_NOT_A_FILE', { path: label });
  // A pipe, socket or device is never a photo, nor is a file that says it is empty (files
  // under /proc do, and some never end): refused unread.
  if (kind === 'special') throw new LookalikeError('IMAGE_UNSUPPORTED', { what: label, detected: 'a pipe, socket or device, not a file' });
  if (kind === 'empty') throw new LookalikeError('IMAGE_UNSUPPORTED', { what: label, detected: 'an empty file' });
  let head: Uint8Array;
  try {
    head = typeof input === 'string' ? await readHead(input) : input;
  } catch (err) {
    throw toImageError(err, label, maxPixels);
  }
  const sniffed = sniffFormat(head);
  if (!isAccepted(sniffed)) throw new LookalikeError('IMAGE_UNSUPPORTED', { what: label, detected: sniffed });
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

/** A relative region in pixels of the upright image, at least one pixel wide and high. */
function cropRect(crop: CropBox, width: number, height: number): { left: number; top: number; width: number; height: number } {
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  const x0 = clamp(crop.x), y0 = clamp(crop.y), x1 = clamp(crop.x + crop.w), y1 = clamp(crop.y + crop.h);
  const left = Math.min(width - 1, Math.floor(x0 * width));
  const top = Math.min(height - 1, Math.floor(y0 * height));
  return {
    left, top,
    width: Math.max(1, Math.min(width - left, Math.round((x1 - x0) * width))),
    height: Math.max(1, Math.min(height - top, Math.round((y1 - y0) * height))),
  };
}

export async function prepareImage(input: string | Buffer, opts: PrepareOptions): Promise<PreparedImage> {
  const label = opts.label ?? (typeof input === 'string' ? input : 'the image');
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const source = opts.source ?? await inspectImage(input, label, maxPixels);
  const warnings: string[] = [];
  let raw: Buffer;
  try {
    raw = await decode(input, opts, maxPixels, 'warning');
  } catch (strict) {
    // libvips warns about damage it can work around (a JPEG scan with bad Huffman codes
    // decodes to noise in places). Such a photo is still used, with the damage reported;
    // damage it cannot work around (a PNG checksum error, a cut-off file) is refused.
    try {
      raw = await decode(input, opts, maxPixels, 'error');
    } catch (err) {
      throw toImageError(err, label, maxPixels);
    }
    warnings.push(`${label} is damaged in places (${plainReason(strict)}); it was decoded anyway, so results may be off. Export the photo again if you can.`);
  }
  return { tensor: rgbToTensor(raw, opts), colour: colourHistogram(raw, opts.width, opts.height), rgb: raw, source, warnings };
}

async function decode(input: string | Buffer, opts: PrepareOptions, maxPixels: number, failOn: 'warning' | 'error'): Promise<Buffer> {
  let pipeline = sharp(input, { failOn, limitInputPixels: maxPixels }).rotate();
  if (opts.crop) {
    // Extract after rotate, from the upright pixels, so the crop is in the coordinates
    // the shopper saw.
    const upright = await pipeline.raw().toBuffer({ resolveWithObject: true });
    const { width, height, channels } = upright.info;
    pipeline = sharp(upright.data, { raw: { width, height, channels } }).extract(cropRect(opts.crop, width, height));
  }
  return pipeline
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

function toImageError(err: unknown, label: string, maxPixels = DEFAULT_MAX_PIXELS): LookalikeError {
  if (err instanceof LookalikeError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (/Input file is missing|ENOENT/i.test(message)) return new LookalikeError('IMAGE_NOT_FOUND', { path: label }, { cause: err });
  if (/EISDIR/i.test(message)) return new LookalikeError('IMAGE_NOT_A_FILE', { path: label }, { cause: err });
  if (/unsupported image format|bad seek|Input buffer is empty|Input file contains unsupported/i.test(message)) {
    return new LookalikeError('IMAGE_UNSUPPORTED', { what: label, detected: 'unknown' }, { cause: err });
  }
  if (/pixel limit/i.test(message)) return new LookalikeError('IMAGE_TOO_LARGE', { what: label, width: '?', height: '?', limit: maxPixels.toLocaleString('en-US') }, { cause: err });
  return new LookalikeError('IMAGE_CORRUPT', { what: label, reason: plainReason(err) }, { cause: err });
}

/**
 * A decoder failure in plain words. libvips' own text (library names, glib detail) means
 * nothing to a user and tells an API client which libraries the server runs.
 */
function plainReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (/premature end|truncated|unexpected end|end of (file|data|stream)|Not enough data|short read|incomplete/i.test(message)) return 'the file ends early';
  if (/crc|checksum|adler/i.test(message)) return 'a checksum does not match';
  if (/huffman|corrupt|invalid|bad|damaged|broken|decode/i.test(message)) return 'the compressed data is damaged';
  return 'the data is damaged';
}
