import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { IMAGE_EXTENSIONS, readCatalog, summarizeProblems, type CatalogProblem } from '../../src/catalog/index.js';

const HEADER = 'id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName';

let tmp: string;
let jpeg: Buffer;
let counter = 0;

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'lookalike-catalog-'));
  jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } }).jpeg().toBuffer();
});

afterAll(async () => {
  await fs.rm(tmp, { recursive: true, force: true });
});

/** A fresh folder holding `files`: string contents are written as is, null means a tiny JPEG. */
async function fixture(files: Record<string, string | Buffer | null>): Promise<string> {
  const dir = path.join(tmp, `c${++counter}`);
  await fs.mkdir(dir, { recursive: true });
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.writeFile(p, content ?? jpeg);
  }
  return dir;
}

/** styles.csv from `lines` plus images/<id>.jpg for each of `imageIds`. */
async function kaggle(lines: string[], imageIds: string[], eol = '\n'): Promise<string> {
  const files: Record<string, string | null> = { 'styles.csv': lines.join(eol) + eol };
  for (const id of imageIds) files[`images/${id}.jpg`] = null;
  return fixture(files);
}

function ofKind(problems: CatalogProblem[], kind: CatalogProblem['kind']): CatalogProblem[] {
  return problems.filter((p) => p.kind === kind);
}

describe('readCatalog, styles.csv layout', () => {
  it('reads rows in CSV order with trimmed metadata and absolute image paths', async () => {
    const dir = await kaggle(
      [
        HEADER,
        '2,Men,Apparel,Topwear,Tshirts,Navy Blue,Fall,2011,Casual, Turtle Check Men Navy Blue Shirt ',
        '1,Women,Accessories,Watches,Watches,Silver,Winter,2016,Casual,Titan Women Silver Watch',
      ],
      ['1', '2'],
    );
    const catalog = await readCatalog(path.relative(process.cwd(), dir));
    expect(catalog.root).toBe(dir);
    expect(catalog.kind).toBe('styles-csv');
    expect(catalog.columns).toEqual(HEADER.split(',').slice(1));
    expect(catalog.items.map((i) => i.id)).toEqual(['2', '1']);
    expect(catalog.items[0].imagePath).toBe(path.join(dir, 'images', '2.jpg'));
    expect(catalog.items[0].metadata).toEqual({
      gender: 'Men',
      masterCategory: 'Apparel',
      subCategory: 'Topwear',
      articleType: 'Tshirts',
      baseColour: 'Navy Blue',
      season: 'Fall',
      year: '2011',
      usage: 'Casual',
      productDisplayName: 'Turtle Check Men Navy Blue Shirt',
    });
    expect(catalog.problems).toEqual([]);
  });

  it('joins unquoted commas in the last column back into it', async () => {
    const dir = await kaggle(
      [
        HEADER,
        '1,Men,Footwear,Shoes,Casual Shoes,Black,Summer,2012,Casual,Puma Men Black, White Shoe',
        '2,Men,Footwear,Shoes,Casual Shoes,Black,Summer,2012,Casual,Nike Men, Black, Grey, Red Shoe',
      ],
      ['1', '2'],
    );
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => i.metadata.productDisplayName)).toEqual(['Puma Men Black, White Shoe', 'Nike Men, Black, Grey, Red Shoe']);
    expect(catalog.items.every((i) => Object.keys(i.metadata).length === catalog.columns.length)).toBe(true);
    expect(catalog.problems).toEqual([]);
  });

  it('drops trailing empty fields instead of gluing commas onto the last column', async () => {
    const dir = await kaggle(['id,name', '1,Red Dress,,', '2,Blue Shirt, Slim,'], ['1', '2']);
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => i.metadata.name)).toEqual(['Red Dress', 'Blue Shirt, Slim']);
  });

  it('reads quoted fields holding commas and doubled quotes', async () => {
    const dir = await kaggle(
      [
        HEADER,
        '7491,Women,Apparel,Bottomwear,Shorts,Pink,Summer,2011,Sports,"Nike Women\'s EM Tempo 3.5"" Pink Short"',
        '7,"Men, Boys",Apparel,Topwear,Shirts,"Red, ""Cherry""",Fall,2012,Casual,"Shirt, red"',
        '8,Men,Apparel,Topwear,Shirts,Red,Fall,2012,Casual,Shirt with 5" print',
      ],
      ['7491', '7', '8'],
    );
    const catalog = await readCatalog(dir);
    const byId = Object.fromEntries(catalog.items.map((i) => [i.id, i.metadata]));
    expect(byId['7491'].productDisplayName).toBe('Nike Women\'s EM Tempo 3.5" Pink Short');
    expect(byId['7'].gender).toBe('Men, Boys');
    expect(byId['7'].baseColour).toBe('Red, "Cherry"');
    expect(byId['7'].productDisplayName).toBe('Shirt, red');
    expect(byId['8'].productDisplayName).toBe('Shirt with 5" print');
    expect(catalog.problems).toEqual([]);
  });

  it('reads a quoted cell that spans lines and keeps later line numbers right', async () => {
    const dir = await kaggle(['id,name,notes', '1,Dress,"long', 'description"', '2,Shirt,plain', '2,Again,dup'], ['1', '2'], '\r\n');
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => [i.id, i.metadata.notes])).toEqual([
      ['1', 'long\r\ndescription'],
      ['2', 'plain'],
    ]);
    expect(catalog.problems).toMatchObject([{ kind: 'duplicate-id', id: '2', line: 5 }]);
  });

  it('handles a UTF-8 BOM and CRLF line endings', async () => {
    const dir = await fixture({
      'styles.csv': '\uFEFF' + [HEADER, '1,Men,Apparel,Topwear,Shirts,Red,Fall,2012,Casual,Red Shirt', '2,Women,Apparel,Topwear,Tops,Blue,Fall,2012,Casual,"Blue, Top"', ''].join('\r\n'),
      'images/1.jpg': null,
      'images/2.jpg': null,
    });
    const catalog = await readCatalog(dir);
    expect(catalog.columns[0]).toBe('gender');
    expect(catalog.items.map((i) => i.id)).toEqual(['1', '2']);
    expect(catalog.items[0].metadata.productDisplayName).toBe('Red Shirt');
    expect(catalog.items[1].metadata.productDisplayName).toBe('Blue, Top');
    expect(catalog.problems).toEqual([]);
  });

  it('reads classic Mac (CR only) line endings', async () => {
    const dir = await fixture({ 'styles.csv': 'id,name\r1,Red\r2,Blue\r', 'images/1.jpg': null, 'images/2.jpg': null });
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => [i.id, i.metadata.name])).toEqual([
      ['1', 'Red'],
      ['2', 'Blue'],
    ]);
  });

  it('finds the id column anywhere in the header, in any case, and leaves it out of columns', async () => {
    const dir = await kaggle(['name, ID ,colour', 'Red Dress,10,Red', 'Blue Shirt, 11 ,Blue'], ['10', '11']);
    const catalog = await readCatalog(dir);
    expect(catalog.columns).toEqual(['name', 'colour']);
    expect(catalog.items.map((i) => i.id)).toEqual(['10', '11']);
    expect(catalog.items[1].metadata).toEqual({ name: 'Blue Shirt', colour: 'Blue' });
  });

  it('keeps rows with fewer fields than the header, filling empty cells, without a problem', async () => {
    const dir = await kaggle([HEADER, '1,Men,Apparel', '2,Women,Apparel,Topwear,Tops,,Fall,,Casual,Top'], ['1', '2']);
    const catalog = await readCatalog(dir);
    expect(catalog.items[0].metadata).toMatchObject({ gender: 'Men', masterCategory: 'Apparel', subCategory: '', productDisplayName: '' });
    expect(catalog.items[1].metadata).toMatchObject({ baseColour: '', year: '', productDisplayName: 'Top' });
    expect(catalog.problems).toEqual([]);
  });

  it('gives empty or repeated header names distinct metadata keys', async () => {
    const dir = await kaggle(['id,name,,name', '1,a,b,c'], ['1']);
    const catalog = await readCatalog(dir);
    expect(catalog.columns).toEqual(['name', 'column3', 'name_2']);
    expect(catalog.items[0].metadata).toEqual({ name: 'a', column3: 'b', name_2: 'c' });
  });

  it('reports listed ids without an image and leaves them out', async () => {
    const dir = await kaggle(['id,name', '1,Red', '2,Blue', '3,Green'], ['1', '3']);
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => i.id)).toEqual(['1', '3']);
    expect(catalog.problems).toMatchObject([{ kind: 'missing-image', id: '2', line: 3, file: path.join(dir, 'styles.csv') }]);
  });

  it('reports images with no CSV row and leaves them out: styles.csv is the list of products', async () => {
    const dir = await kaggle(['id,name,colour', '1,Red Dress,Red'], ['1', '9', '10']);
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => i.id)).toEqual(['1']);
    expect(catalog.problems).toMatchObject([
      { kind: 'unlisted-image', id: '10', file: path.join(dir, 'images', '10.jpg') },
      { kind: 'unlisted-image', id: '9' },
    ]);
  });

  it('keeps the first of repeated ids and skips rows with an empty id', async () => {
    const dir = await kaggle(['id,name', '1,First', ',Nameless', '2,Other', '1,Second', '  ,Blank id', ',,'], ['1', '2']);
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => [i.id, i.metadata.name])).toEqual([
      ['1', 'First'],
      ['2', 'Other'],
    ]);
    expect(catalog.problems).toMatchObject([
      { kind: 'empty-id', line: 3 },
      { kind: 'duplicate-id', id: '1', line: 5 },
      { kind: 'empty-id', line: 6 },
    ]);
    expect(catalog.problems[1].detail).toContain('line 2');
  });

  it('reports a row with an unterminated quote by line and still loads the rows after it', async () => {
    const dir = await kaggle(
      [HEADER, '1,Men,Apparel,Topwear,Shirts,Red,Fall,2012,Casual,Red Shirt', '', '2,Men,Apparel,Topwear,Shirts,Red,Fall,2012,Casual,"Broken, name', '3,Men,Apparel,Topwear,Shirts,Blue,Fall,2012,Casual,Blue Shirt', '4,Men,Apparel,Topwear,Shirts,Green,Fall,2012,Casual,Green Shirt'],
      ['1', '2', '3', '4'],
    );
    const catalog = await readCatalog(dir);
    expect(catalog.items.filter((i) => i.metadata.productDisplayName !== '').map((i) => i.id)).toEqual(['1', '3', '4']);
    expect(ofKind(catalog.problems, 'malformed-row')).toMatchObject([{ id: '2', line: 4, file: path.join(dir, 'styles.csv') }]);
    // Its image is still searchable, without metadata.
    expect(catalog.items.find((i) => i.id === '2')?.metadata.gender).toBe('');
    expect(ofKind(catalog.problems, 'unlisted-image')).toMatchObject([{ id: '2', detail: expect.stringContaining('line 4 is malformed') }]);
  });

  it('does not let a stray quote further down close an unterminated one and swallow the rows between', async () => {
    const dir = await kaggle(
      [
        'id,name,colour',
        '1,"Broken name,Red',
        '2,Heel 5",Black',
        '3,Shoe,Green',
      ],
      ['1', '2', '3'],
    );
    const catalog = await readCatalog(dir);
    const listed = catalog.items.filter((i) => i.metadata.name !== '');
    expect(listed.map((i) => [i.id, i.metadata.name])).toEqual([
      ['2', 'Heel 5"'],
      ['3', 'Shoe'],
    ]);
    expect(ofKind(catalog.problems, 'malformed-row')).toMatchObject([{ id: '1', line: 2 }]);
  });

  it('reports several broken rows, each once', async () => {
    const dir = await kaggle(['id,name,colour', '1,"a,Red', '2,ok,Blue', '3,"b,Red', '4,"c,Red', '5,ok,Blue'], ['2', '5']);
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => i.id)).toEqual(['2', '5']);
    expect(ofKind(catalog.problems, 'malformed-row').map((p) => p.line)).toEqual([2, 4, 5]);
  });

  it('looks for images next to styles.csv when there is no images folder', async () => {
    const dir = await fixture({ 'styles.csv': 'id,name\n1,Red\n2,Blue\n', '1.jpg': null, '2.png': null });
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => i.imagePath)).toEqual([path.join(dir, '1.jpg'), path.join(dir, '2.png')]);
    expect(catalog.problems).toEqual([]);
  });

  it('matches image extensions in any case, prefers .jpg, and ignores other and hidden files', async () => {
    const dir = await fixture({
      'styles.csv': 'id,name\n1,a\n2,b\n3,c\n4,d\n',
      'images/1.JPG': null,
      'images/2.jpeg': null,
      'images/3.png': null,
      'images/3.jpg': null,
      'images/4.WebP': null,
      'images/5.gif': null,
      'images/notes.txt': 'x',
      'images/._1.jpg': 'resource fork',
    });
    const catalog = await readCatalog(dir);
    expect(catalog.items.map((i) => path.basename(i.imagePath))).toEqual(['1.JPG', '2.jpeg', '3.jpg', '4.WebP']);
    expect(catalog.problems).toEqual([]);
  });
});

describe('readCatalog, plain image folder', () => {
  it('walks subfolders, ids are relative paths, sorted, with the folder as metadata', async () => {
    const dir = await fixture({
      'top.png': null,
      'shoes/red-1.jpg': null,
      'shoes/boots/b.JPEG': null,
      'bags/tote.webp': null,
      'bags/readme.md': 'x',
      '.thumbs/t.jpg': null,
      'node_modules/x/logo.png': null,
    });
    const catalog = await readCatalog(dir);
    expect(catalog.kind).toBe('image-folder');
    expect(catalog.columns).toEqual(['folder']);
    expect(catalog.items.map((i) => i.id)).toEqual(['bags/tote.webp', 'shoes/boots/b.JPEG', 'shoes/red-1.jpg', 'top.png']);
    expect(catalog.items.map((i) => i.metadata)).toEqual([{ folder: 'bags' }, { folder: 'shoes/boots' }, { folder: 'shoes' }, { folder: '' }]);
    expect(catalog.items[1].imagePath).toBe(path.join(dir, 'shoes', 'boots', 'b.JPEG'));
    expect(catalog.problems).toEqual([]);
  });
});

describe('readCatalog errors', () => {
  it('throws CATALOG_NOT_FOUND for a missing folder', async () => {
    const missing = path.join(tmp, 'no-such-folder');
    await expect(readCatalog(missing)).rejects.toMatchObject({ code: 'CATALOG_NOT_FOUND', params: { path: missing } });
  });

  it('throws CATALOG_NOT_A_FOLDER for a file', async () => {
    const dir = await fixture({ 'photo.jpg': null });
    await expect(readCatalog(path.join(dir, 'photo.jpg'))).rejects.toMatchObject({ code: 'CATALOG_NOT_A_FOLDER' });
  });

  it('throws CATALOG_EMPTY for a folder without images', async () => {
    const dir = await fixture({ 'notes.txt': 'x', '.hidden/a.jpg': null });
    await expect(readCatalog(dir)).rejects.toMatchObject({ code: 'CATALOG_EMPTY', params: { path: dir } });
  });

  it('throws CATALOG_EMPTY when no listed id has an image', async () => {
    const dir = await fixture({ 'styles.csv': 'id,name\n1,a\n', 'images/readme.txt': 'x' });
    await expect(readCatalog(dir)).rejects.toMatchObject({ code: 'CATALOG_EMPTY' });
  });

  it('throws CATALOG_NO_ID_COLUMN naming the header', async () => {
    const dir = await kaggle(['sku,name', '1,a'], ['1']);
    await expect(readCatalog(dir)).rejects.toMatchObject({
      code: 'CATALOG_NO_ID_COLUMN',
      params: { path: path.join(dir, 'styles.csv'), header: 'sku,name' },
    });
  });

  it('throws CATALOG_UNREADABLE_CSV for an empty, binary, UTF-16 or folder styles.csv, or a broken header', async () => {
    const cases: Record<string, string | Buffer>[] = [
      { 'styles.csv': '' },
      { 'styles.csv': Buffer.from([0x69, 0x64, 0x00, 0x01, 0x0a]) },
      { 'styles.csv': Buffer.from('\uFEFFid,name\n', 'utf16le') },
      { 'styles.csv/inner.txt': 'x' },
      { 'styles.csv': '"id,name\n1,a\n' },
    ];
    for (const files of cases) {
      const dir = await fixture({ ...files, 'images/1.jpg': null });
      await expect(readCatalog(dir)).rejects.toMatchObject({ code: 'CATALOG_UNREADABLE_CSV', params: { path: path.join(dir, 'styles.csv') } });
    }
  });
});

describe('summarizeProblems', () => {
  it('counts problems per kind and shows at most five examples of each', () => {
    const problems: CatalogProblem[] = [
      ...Array.from({ length: 7 }, (_, i): CatalogProblem => ({ kind: 'missing-image', id: `m${i}`, line: i + 2, detail: `no m${i}.jpg` })),
      { kind: 'malformed-row', line: 40, detail: 'a quoted field opened here is never closed' },
    ];
    const text = summarizeProblems(problems);
    expect(text.split('\n')[0]).toBe('8 catalog problems:');
    expect(text).toMatch(/7 missing-image/);
    expect(text).toMatch(/1 malformed-row/);
    expect(text).toContain('line 2, id m0: no m0.jpg');
    expect(text).toContain('id m4');
    expect(text).not.toContain('id m5');
    expect(text).toContain('and 2 more');
    // Kinds come in a fixed order, malformed rows first.
    expect(text.indexOf('malformed-row')).toBeLessThan(text.indexOf('missing-image'));
  });

  it('says so when there are no problems', () => {
    expect(summarizeProblems([])).toBe('no catalog problems');
  });
});

describe('IMAGE_EXTENSIONS', () => {
  it('lists the formats the image pipeline decodes', () => {
    expect(IMAGE_EXTENSIONS).toEqual(['.jpg', '.jpeg', '.png', '.webp']);
  });
});
