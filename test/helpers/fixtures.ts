/**
 * Small catalogs drawn with sharp, so the tests need no dataset: garment-like
 * shapes in a few colours on white, like catalog photos.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

export type Shape = 'shirt' | 'trousers' | 'watch' | 'bag';

const SHAPES: Record<Shape, string> = {
  shirt: '<path d="M15 10 L30 5 L45 10 L55 25 L47 30 L45 75 L15 75 L13 30 L5 25 Z"/>',
  trousers: '<path d="M15 5 L45 5 L50 75 L35 75 L30 30 L25 75 L10 75 Z"/>',
  watch: '<rect x="24" y="2" width="12" height="76" rx="3"/><circle cx="30" cy="40" r="16" stroke="#222" stroke-width="3"/>',
  bag: '<rect x="10" y="25" width="40" height="45" rx="5"/><path d="M20 25 Q30 5 40 25" fill="none" stroke="#333" stroke-width="4"/>',
};

/** A 60x80 product-style photo: one shape in one colour on white (or on nothing: a PNG cut-out to paste on a scene). */
export function drawProduct(shape: Shape, colour: string, format: 'jpeg' | 'png' | 'webp' = 'jpeg', background: '#fff' | 'none' = '#fff'): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="60" height="80"><rect width="60" height="80" fill="${background}"/><g fill="${colour}">${SHAPES[shape]}</g></svg>`;
  return sharp(Buffer.from(svg))[format]().toBuffer();
}

export interface FixtureItem { id: string; shape: Shape; colour: string; metadata?: Record<string, string> }

export const COLOUR_NAMES: Record<string, string> = { '#d22': 'Red', '#23c': 'Blue', '#2a3': 'Green', '#111': 'Black' };

/** The default fixture: 4 shapes x 4 colours = 16 items with Kaggle-style metadata. */
export function defaultItems(): FixtureItem[] {
  const items: FixtureItem[] = [];
  let id = 1000;
  const article: Record<Shape, [string, string, string]> = {
    shirt: ['Apparel', 'Topwear', 'Shirts'],
    trousers: ['Apparel', 'Bottomwear', 'Trousers'],
    watch: ['Accessories', 'Watches', 'Watches'],
    bag: ['Accessories', 'Bags', 'Handbags'],
  };
  for (const shape of Object.keys(SHAPES) as Shape[]) {
    for (const [colour, name] of Object.entries(COLOUR_NAMES)) {
      const [masterCategory, subCategory, articleType] = article[shape];
      items.push({
        id: String(id++), shape, colour,
        metadata: { gender: id % 2 ? 'Men' : 'Women', masterCategory, subCategory, articleType, baseColour: name, season: 'Summer', year: '2012', usage: 'Casual', productDisplayName: `Test ${name} ${articleType}, size M` },
      });
    }
  }
  return items;
}

export const STYLE_COLUMNS = ['gender', 'masterCategory', 'subCategory', 'articleType', 'baseColour', 'season', 'year', 'usage', 'productDisplayName'];

/** Writes styles.csv + images/<id>.jpg into a new temp folder and returns it. */
export async function makeCatalog(items: FixtureItem[] = defaultItems(), options: { extraCsvLines?: string[]; dir?: string } = {}): Promise<string> {
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'lookalike-catalog-'));
  mkdirSync(path.join(dir, 'images'), { recursive: true });
  const quote = (v: string) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const lines = [['id', ...STYLE_COLUMNS].join(',')];
  for (const item of items) {
    writeFileSync(path.join(dir, 'images', `${item.id}.jpg`), await drawProduct(item.shape, item.colour));
    lines.push([item.id, ...STYLE_COLUMNS.map((c) => quote(item.metadata?.[c] ?? ''))].join(','));
  }
  lines.push(...(options.extraCsvLines ?? []));
  writeFileSync(path.join(dir, 'styles.csv'), `${lines.join('\n')}\n`);
  return dir;
}

export function tempDir(prefix = 'lookalike-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}
