import { beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { deflateSync, crc32 } from 'node:zlib';
import path from 'node:path';
import { drawProduct, makeCatalog, defaultItems, tempDir } from '../helpers/fixtures.js';
import { runCli } from '../helpers/cli.js';

/** A valid PNG header that claims 20000x20000 pixels, without allocating them. */
function hugePng(): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body) >>> 0);
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(20000, 0); ihdr.writeUInt32BE(20000, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1))), chunk('IEND', Buffer.alloc(0))]);
}

let work: string;
let catalog: string;
let index: string;

beforeAll(async () => {
  work = tempDir();
  catalog = await makeCatalog(defaultItems().slice(0, 8));
  index = path.join(work, 'index');
  const r = runCli(['index', catalog, '--index', index, '--json']);
  expect(r.code, r.stderr).toBe(0);
});

function expectOneLineError(r: { code: number | null; stderr: string; stdout: string }, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n').filter((l) => !/npm warn/i.test(l));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^lookalike: /);
  expect(lines[0]).toMatch(pattern);
}

describe('the command line', () => {
  it('prints a JSON index report, then query and similar results as JSON', async () => {
    const photo = path.join(work, 'photo.jpg');
    writeFileSync(photo, await drawProduct('shirt', '#23c'));
    const q = runCli(['query', photo, '--index', index, '-k', '3', '--json']);
    expect(q.code, q.stderr).toBe(0);
    const json = JSON.parse(q.stdout);
    expect(json.results).toHaveLength(3);
    expect(json.results[0]).toMatchObject({ rank: 1, articleType: 'Shirts' });
    expect(typeof json.results[0].score).toBe('number');
    const s = runCli(['similar', '1000', '--index', index, '-k', '2', '--filter', 'baseColour=Blue', '--json']);
    // The fixture's two blue items (a shirt and trousers), and nothing else.
    expect(JSON.parse(s.stdout).results.map((r: { baseColour: string }) => r.baseColour)).toEqual(['Blue', 'Blue']);
  });

  it('info names the arithmetic and the CPU it relies on', () => {
    const r = runCli(['info', '--index', index]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^arithmetic: int8 \(quantiser v5, 7-bit weights\), u8 x s8 kernels/m);
    expect(r.stdout).toMatch(/^cpu: +.+ \(\w+, \d+ cores; .+; VNNI: (yes|no|unknown)\)$/m);
    const json = JSON.parse(runCli(['info', '--index', index, '--json']).stdout);
    expect(json.arithmetic).toMatchObject({ precision: 'int8', quantiser: 5, weightBits: 7, exact: true });
  });

  it('exports embeddings, metadata and recommendations as CSV', () => {
    const emb = path.join(work, 'emb.csv'), meta = path.join(work, 'meta.csv'), rec = path.join(work, 'rec.csv');
    expect(runCli(['export', '--index', index, '--embeddings', emb, '--metadata', meta]).code).toBe(0);
    const embLines = readFileSync(emb, 'utf8').trim().split('\n');
    expect(embLines).toHaveLength(9);
    expect(embLines[0].split(',')).toHaveLength(2049);
    const v = embLines[1].split(',').slice(1).map(Number);
    expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    const metaText = readFileSync(meta, 'utf8');
    expect(metaText.split('\n')[0]).toBe('id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName,image');
    expect(metaText).toContain('"Test Red Shirts, size M"');
    expect(runCli(['recommend', '--index', index, '-k', '2', '--out', rec]).code).toBe(0);
    const recLines = readFileSync(rec, 'utf8').trim().split('\n');
    expect(recLines[0]).toBe('query_id,rank,id,score');
    expect(recLines).toHaveLength(1 + 8 * 2);
  });

  it('indexes a sample with every articleType first (--sample), and the rest on the next run', async () => {
    const full = await makeCatalog(defaultItems());
    const sampled = path.join(work, 'sampled');
    const first = runCli(['index', full, '--index', sampled, '--sample', '4', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ added: 4, total: 4, pending: 12 });
    const meta = runCli(['export', '--metadata', '-', '--index', sampled]);
    expect(meta.code, meta.stderr).toBe(0);
    const types = meta.stdout.trim().split('\n').slice(1).map((line) => ['Shirts', 'Trousers', 'Watches', 'Handbags'].find((t) => line.includes(t)));
    expect(types.sort()).toEqual(['Handbags', 'Shirts', 'Trousers', 'Watches']);
    const rest = runCli(['index', full, '--index', sampled, '--json']);
    expect(rest.code, rest.stderr).toBe(0);
    expect(JSON.parse(rest.stdout)).toMatchObject({ added: 12, total: 16, pending: 0 });
  });

  it('explains every command with --help', () => {
    for (const cmd of ['index', 'query', 'similar', 'export', 'recommend', 'info', 'bench']) {
      const r = runCli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: lookalike/);
    }
  });
});

describe('bad input gets a one-line error and leaves the index intact', () => {
  const indexBytes = () => statSync(path.join(index, 'index.sqlite')).size;

  it('a missing catalog folder', () => {
    expectOneLineError(runCli(['index', path.join(work, 'nope'), '--index', index]), /catalog folder not found/);
  });

  it('an empty catalog folder', () => {
    const empty = path.join(work, 'empty');
    mkdirSync(empty);
    expectOneLineError(runCli(['index', empty, '--index', index]), /no images found/);
  });

  it('a CSV without an id column', () => {
    const dir = path.join(work, 'noid');
    mkdirSync(path.join(dir, 'images'), { recursive: true });
    writeFileSync(path.join(dir, 'styles.csv'), 'sku,gender\n1,Men\n');
    expectOneLineError(runCli(['index', dir, '--index', index]), /no "id" column/);
  });

  it('a query file that is not an image, a truncated JPEG, a 20000x20000 image, a missing file', async () => {
    const before = indexBytes();
    const text = path.join(work, 'notes.jpg');
    writeFileSync(text, 'just some text, not a photo');
    expectOneLineError(runCli(['query', text, '--index', index]), /not an image Lookalike can read/);
    const jpeg = await drawProduct('bag', '#d22');
    const truncated = path.join(work, 'truncated.jpg');
    writeFileSync(truncated, jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
    expectOneLineError(runCli(['query', truncated, '--index', index]), /could not be decoded/);
    const huge = path.join(work, 'huge.png');
    writeFileSync(huge, hugePng());
    expectOneLineError(runCli(['query', huge, '--index', index]), /20000x20000 pixels, over the limit/);
    expectOneLineError(runCli(['query', path.join(work, 'missing.jpg'), '--index', index]), /image file not found/);
    expect(indexBytes()).toBe(before);
    const ok = runCli(['similar', '1000', '--index', index, '--json']);
    expect(JSON.parse(ok.stdout).results).toHaveLength(5);
  });

  it('an index that does not exist, an unknown id, a bad filter', () => {
    expectOneLineError(runCli(['similar', '1', '--index', path.join(work, 'no-index')]), /no index at .*Build one first/);
    expectOneLineError(runCli(['similar', '999', '--index', index]), /no item with id "999"/);
    expectOneLineError(runCli(['similar', '1000', '--index', index, '--filter', 'colour=Red']), /unknown filter field "colour"/);
  });
});
