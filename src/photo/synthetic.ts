/**
 * Shopper photos made from catalog packshots: the same product, photographed the way a
 * shopper would (busy background, small and off-centre, tilted and cut off, warm dim
 * light, blurred and compressed, between other products). Everything is drawn with sharp
 * and a seeded generator, so a (seed, item, kind) triple always gives the same JPEG.
 *
 * One source for every synthetic shopper view: `lookalike train` learns from them
 * (train/views.ts), `lookalike robustness` and the asking evaluation measure on them
 * (eval/robustness.ts, eval/asking.ts: scenePhoto), and the bench times photo searches
 * with them (bench/core.ts), so what is trained on is what is measured.
 */
import sharp, { type Sharp } from 'sharp';
import { Random } from '../math/random.js';

export const PERTURBATIONS = ['background', 'scale', 'rotate', 'light', 'blur', 'clutter'] as const;
export type Perturbation = (typeof PERTURBATIONS)[number];

export const PERTURBATION_LABELS: Record<Perturbation, string> = {
  background: 'busy background',
  scale: 'small, off-centre',
  rotate: 'rotated + cut off',
  light: 'warm dim light',
  blur: 'blur + JPEG q10-25',
  clutter: 'other products beside it',
};

/** The shopper's photo size (3:4, as the catalog's packshots). */
const W = 240;
const H = 320;

interface Rgba { data: Buffer; width: number; height: number }

/** A packshot decoded to RGBA at `height` pixels high, white background made transparent. */
async function cutOut(file: string, height: number): Promise<Rgba> {
  const { data, info } = await sharp(file).flatten({ background: '#ffffff' }).resize({ height, kernel: 'cubic' })
    .removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  const out = Buffer.alloc(info.width * info.height * 4);
  for (let p = 0, i = 0, o = 0; p < info.width * info.height; p++, i += 3, o += 4) {
    const r = data[i], g = data[i + 1], b = data[i + 2];
    // Soft edge: fully opaque below 225 in any channel, fading out towards pure white.
    const lo = Math.min(r, g, b);
    const alpha = lo <= 225 ? 255 : Math.max(0, Math.round(255 * (250 - lo) / 25));
    out[o] = r; out[o + 1] = g; out[o + 2] = b; out[o + 3] = alpha;
  }
  return { data: out, width: info.width, height: info.height };
}

/** Busy backgrounds: a blotchy colour field with stripes or checks over it. */
function busyBackground(rng: Random): Buffer {
  const out = Buffer.alloc(W * H * 3);
  const gw = 5, gh = 6;
  const grid = Array.from({ length: gw * gh }, () => [rng.int(256), rng.int(256), rng.int(256)]);
  const stripe = [rng.int(256), rng.int(256), rng.int(256)];
  const period = 12 + rng.int(30);
  const angle = rng.next() * Math.PI;
  const checks = rng.next() < 0.4;
  const ca = Math.cos(angle), sa = Math.sin(angle);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      // Bilinear blend of the coarse colour grid.
      const gx = (x / W) * (gw - 1), gy = (y / H) * (gh - 1);
      const x0 = Math.min(gw - 2, Math.floor(gx)), y0 = Math.min(gh - 2, Math.floor(gy));
      const fx = gx - x0, fy = gy - y0;
      const o = (y * W + x) * 3;
      const u = x * ca + y * sa, v = -x * sa + y * ca;
      const on = checks
        ? (Math.floor(u / period) + Math.floor(v / period)) % 2 === 0
        : Math.floor(u / period) % 2 === 0;
      for (let c = 0; c < 3; c++) {
        const base = (1 - fy) * ((1 - fx) * grid[y0 * gw + x0][c] + fx * grid[y0 * gw + x0 + 1][c])
          + fy * ((1 - fx) * grid[(y0 + 1) * gw + x0][c] + fx * grid[(y0 + 1) * gw + x0 + 1][c]);
        out[o + c] = Math.round(on ? 0.55 * base + 0.45 * stripe[c] : base);
      }
    }
  }
  return out;
}

function plain(colour: [number, number, number]): Buffer {
  const out = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H * 3; i += 3) { out[i] = colour[0]; out[i + 1] = colour[1]; out[i + 2] = colour[2]; }
  return out;
}

interface Placed { image: Rgba; left: number; top: number }

async function compose(background: Buffer, placed: Placed[]): Promise<Sharp> {
  const flat = await sharp(background, { raw: { width: W, height: H, channels: 3 } })
    .composite(placed.map((p) => ({ input: p.image.data, raw: { width: p.image.width, height: p.image.height, channels: 4 as const }, left: Math.round(p.left), top: Math.round(p.top) })))
    .removeAlpha().raw().toBuffer();
  return sharp(flat, { raw: { width: W, height: H, channels: 3 } });
}

/** Centred with a small jitter; parts outside the canvas are cut by a trim first. */
async function placeAt(image: Rgba, left: number, top: number): Promise<Placed> {
  // sharp refuses overlays that stick out of the canvas: cut them to it.
  const x0 = Math.max(0, -Math.round(left)), y0 = Math.max(0, -Math.round(top));
  const x1 = Math.min(image.width, W - Math.round(left)), y1 = Math.min(image.height, H - Math.round(top));
  if (x0 === 0 && y0 === 0 && x1 === image.width && y1 === image.height) return { image, left, top };
  const { data, info } = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 4 } })
    .extract({ left: x0, top: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) }).raw().toBuffer({ resolveWithObject: true });
  return { image: { data, width: info.width, height: info.height }, left: Math.max(0, left), top: Math.max(0, top) };
}

const between = (rng: Random, lo: number, hi: number) => lo + (hi - lo) * rng.next();

/**
 * One shopper photo (JPEG bytes) of the product in `file`. `others` are packshots of other
 * products, used by 'clutter'. The same arguments always give the same bytes.
 */
export async function perturbPhoto(file: string, kind: Perturbation, seed: number, others: string[] = []): Promise<Buffer> {
  const rng = new Random(seed);
  let quality = 88;
  let photo: Sharp;
  switch (kind) {
    case 'background': {
      const item = await cutOut(file, Math.round(H * between(rng, 0.75, 0.9)));
      photo = await compose(busyBackground(rng), [await placeAt(item, (W - item.width) / 2 + between(rng, -15, 15), (H - item.height) / 2 + between(rng, -15, 15))]);
      break;
    }
    case 'scale': {
      const item = await cutOut(file, Math.round(H * between(rng, 0.5, 0.65)));
      const tone = 200 + rng.int(40);
      const left = between(rng, 0, W - item.width), top = between(rng, 0, H - item.height);
      photo = await compose(plain([tone, tone - rng.int(15), tone - rng.int(30)]), [await placeAt(item, left, top)]);
      break;
    }
    case 'rotate': {
      const angle = (rng.next() < 0.5 ? -1 : 1) * between(rng, 10, 25);
      const item = await cutOut(file, Math.round(H * 0.9));
      const upright = await compose(plain([255, 255, 255]), [await placeAt(item, (W - item.width) / 2, (H - item.height) / 2)]);
      const { data, info } = await upright.rotate(angle, { background: '#ffffff' }).raw().toBuffer({ resolveWithObject: true });
      // Cut 10-20% off one side of the tilted photo, as a hurried framing does.
      const cut = between(rng, 0.1, 0.2);
      const side = rng.int(4);
      const w = info.width, h = info.height;
      const box = side === 0 ? { left: Math.round(w * cut), top: 0, width: Math.round(w * (1 - cut)), height: h }
        : side === 1 ? { left: 0, top: 0, width: Math.round(w * (1 - cut)), height: h }
          : side === 2 ? { left: 0, top: Math.round(h * cut), width: w, height: Math.round(h * (1 - cut)) }
            : { left: 0, top: 0, width: w, height: Math.round(h * (1 - cut)) };
      photo = sharp(data, { raw: { width: w, height: h, channels: info.channels } }).extract(box).resize(W, H, { fit: 'cover' });
      break;
    }
    case 'light': {
      const item = await cutOut(file, Math.round(H * 0.9));
      const shot = await compose(plain([255, 255, 255]), [await placeAt(item, (W - item.width) / 2, (H - item.height) / 2)]);
      const dim = between(rng, 0.45, 0.65);
      // Tungsten-like cast: red kept, blue cut; a gamma above 1 darkens the mid-tones too.
      const gains = [dim, dim * between(rng, 0.78, 0.86), dim * between(rng, 0.5, 0.62)];
      const gamma = between(rng, 1.2, 1.6);
      const pixels = await shot.raw().toBuffer();
      for (let i = 0; i < pixels.length; i++) pixels[i] = Math.round(255 * gains[i % 3] * (pixels[i] / 255) ** gamma);
      photo = sharp(pixels, { raw: { width: W, height: H, channels: 3 } });
      break;
    }
    case 'blur': {
      const item = await cutOut(file, Math.round(H * 0.9));
      const shot = await compose(plain([255, 255, 255]), [await placeAt(item, (W - item.width) / 2, (H - item.height) / 2)]);
      photo = shot.blur(between(rng, 1.5, 3));
      quality = 10 + rng.int(16);
      break;
    }
    case 'clutter': {
      const item = await cutOut(file, Math.round(H * between(rng, 0.6, 0.7)));
      const neighbours = await Promise.all(others.slice(0, 2).map((o) => cutOut(o, Math.round(H * between(rng, 0.45, 0.55)))));
      const placed: Placed[] = [];
      // Neighbours stand left and right, half out of the frame, behind the product.
      for (const [i, n] of neighbours.entries()) {
        const left = i === 0 ? -n.width * between(rng, 0.2, 0.45) : W - n.width * between(rng, 0.55, 0.8);
        placed.push(await placeAt(n, left, between(rng, 0, H - n.height)));
      }
      placed.push(await placeAt(item, (W - item.width) / 2 + between(rng, -20, 20), (H - item.height) / 2 + between(rng, -20, 20)));
      photo = await compose(plain([255, 255, 255]), placed);
      break;
    }
  }
  return photo.jpeg({ quality }).toBuffer();
}

/** Width of one product's slot in a scene photo (scenePhoto), pixels. */
const SCENE_SLOT = 200;

/**
 * A scene of several products (an outfit laid out): each packshot cut out and placed in
 * its own slot of a light, plain photo (or a busy one: 'busy', as 'background' draws it), SCENE_SLOT pixels wide and H high, at 55-75% of
 * the height with some jitter. Returns the JPEG and where each product lies (relative
 * boxes), for measuring shop the look.
 */
export async function scenePhoto(files: readonly string[], seed: number, background: 'plain' | 'busy' = 'plain'): Promise<{ jpeg: Buffer; boxes: Array<{ x: number; y: number; w: number; h: number }> }> {
  const rng = new Random(seed);
  const width = SCENE_SLOT * files.length;
  const tone = 225 + rng.int(25);
  const placed: Array<{ input: Buffer; raw: { width: number; height: number; channels: 4 }; left: number; top: number }> = [];
  const boxes: Array<{ x: number; y: number; w: number; h: number }> = [];
  for (const [i, file] of files.entries()) {
    let item = await cutOut(file, Math.round(H * between(rng, 0.55, 0.75)));
    if (item.width > SCENE_SLOT - 10) {
      const { data, info } = await sharp(item.data, { raw: { width: item.width, height: item.height, channels: 4 } }).resize({ width: SCENE_SLOT - 10 }).raw().toBuffer({ resolveWithObject: true });
      item = { data, width: info.width, height: info.height };
    }
    const left = Math.round(i * SCENE_SLOT + between(rng, 0, SCENE_SLOT - item.width));
    const top = Math.round(between(rng, 0, H - item.height));
    placed.push({ input: item.data, raw: { width: item.width, height: item.height, channels: 4 }, left, top });
    boxes.push({ x: left / width, y: top / H, w: item.width / width, h: item.height / H });
  }
  const canvas = background === 'busy'
    ? sharp(await sharp(busyBackground(rng), { raw: { width: W, height: H, channels: 3 } }).resize(width, H, { fit: 'fill' }).png().toBuffer())
    : sharp({ create: { width, height: H, channels: 3, background: { r: tone, g: tone, b: tone - rng.int(20) } } });
  const jpeg = await canvas.composite(placed).jpeg({ quality: 88 }).toBuffer();
  return { jpeg, boxes };
}
