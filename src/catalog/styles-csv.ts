/**
 * The Kaggle "Fashion Product Images" layout: styles.csv (one row per product, an "id"
 * column) and images/<id>.jpg. Bad rows and missing files become problems, never throws:
 * one broken row must not cost the other 31k.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import path from 'node:path';
import { parse, type CsvError } from 'csv-parse/sync';
import { LookalikeError, redactUrl } from '../errors.js';
import { compareIds, IMAGE_EXTENSIONS, listImagesById } from './image-folder.js';
import { claimPhotos } from './photo-claims.js';
import type { Catalog, CatalogItem, CatalogProblem, PhotoList, PhotoSource } from './types.js';

export interface CsvRow {
  fields: string[];
  /** 1-based line where the row starts (a quoted field may carry it over several lines). */
  line: number;
}

export interface BrokenRow {
  line: number;
  reason: string;
  /** The row's first physical line, for a best-effort id. */
  text: string;
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const QUOTE = 0x22;
const COMMA = 0x2c;

/** Line boundaries as byte offsets; csv-parse reports positions in bytes. */
class Lines {
  private readonly newlines: number[] = [];
  readonly count: number;

  constructor(private readonly buf: Buffer) {
    for (let i = buf.indexOf(NEWLINE); i !== -1; i = buf.indexOf(NEWLINE, i + 1)) this.newlines.push(i);
    const endsWithNewline = this.newlines.length > 0 && this.newlines[this.newlines.length - 1] === buf.length - 1;
    this.count = this.newlines.length + (endsWithNewline || buf.length === 0 ? 0 : 1);
  }

  /** 1-based line holding byte `offset`; a line's own '\n' belongs to it. */
  lineAt(offset: number): number {
    let lo = 0;
    let hi = this.newlines.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.newlines[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo + 1;
  }

  startOf(line: number): number {
    return line <= 1 ? 0 : this.newlines[line - 2] + 1;
  }

  /** Just past the line's '\n' (or the end of the file). */
  nextStart(line: number): number {
    return line - 1 < this.newlines.length ? this.newlines[line - 1] + 1 : this.buf.length;
  }

  /** End of the line's content, before '\n' or '\r\n'. */
  contentEnd(line: number): number {
    let end = line - 1 < this.newlines.length ? this.newlines[line - 1] : this.buf.length;
    if (end > this.startOf(line) && this.buf[end - 1] === CARRIAGE_RETURN) end--;
    return end;
  }

  text(line: number): string {
    return this.buf.toString('utf8', this.startOf(line), this.contentEnd(line));
  }

  commasOn(line: number): number {
    let n = 0;
    for (let i = this.startOf(line), end = this.contentEnd(line); i < end; i++) if (this.buf[i] === COMMA) n++;
    return n;
  }
}

const CSV_OPTIONS = {
  // Product names hold stray quotes (5" heels) and commas; commas are repaired after parsing.
  relax_quotes: true,
  relax_column_count: true,
  skip_empty_lines: true,
} as const;

/** Thrown from on_record when a "multi-line cell" has swallowed rows of its own. */
class SwallowedRowsError extends Error {}

/** First non-blank byte in [from, to), so a row's line number skips blank lines before it. */
function firstContentByte(buf: Buffer, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const b = buf[i];
    if (b !== 0x20 && b !== 0x09 && b !== CARRIAGE_RETURN && b !== NEWLINE) return i;
  }
  return from;
}

/**
 * Rows of the file, header first, with their line numbers.
 *
 * A line without a double quote means exactly its comma-separated fields, so it is split
 * directly: csv-parse over the whole 3 MB Kaggle file took 0.3-0.45 s on a 2-core dev box,
 * splitting ~50 ms. Runs of lines with quotes go to csv-parse, up to the next quote-free line
 * that has as many commas as a whole row: an open quote cannot survive such a line, so an
 * unclosed quote costs its own row only. Over the whole input csv-parse would instead fail
 * outright or, if a stray quote further down "closes" it, silently merge the rows in between
 * into one cell; a record reaching over a row-like line is therefore rejected too (a real
 * multi-line cell rarely holds such a line).
 */
export function parseCsvRows(buf: Buffer): { rows: CsvRow[]; broken: BrokenRow[] } {
  const lines = new Lines(buf);
  const quotes: number[] = [];
  for (let i = buf.indexOf(QUOTE); i !== -1; i = buf.indexOf(QUOTE, i + 1)) quotes.push(i);
  const hasQuote = (line: number): boolean => {
    const start = lines.startOf(line);
    let lo = 0;
    let hi = quotes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (quotes[mid] < start) lo = mid + 1;
      else hi = mid;
    }
    return lo < quotes.length && quotes[lo] < lines.contentEnd(line);
  };
  const rows: CsvRow[] = [];
  const broken: BrokenRow[] = [];
  const rowCommas = (): number => (rows.length > 0 ? Math.max(1, rows[0].fields.length - 1) : 1);

  let line = 1;
  while (line <= lines.count) {
    if (quotes.length === 0 || !hasQuote(line)) {
      const text = buf.toString('utf8', lines.startOf(line), lines.contentEnd(line));
      if (text.trim() !== '') rows.push({ fields: text.split(','), line });
      line++;
      continue;
    }

    let last = line;
    while (last < lines.count && (hasQuote(last + 1) || lines.commasOn(last + 1) < rowCommas())) last++;
    const chunkStart = lines.startOf(line);
    const chunkEnd = lines.nextStart(last);
    let prevEnd = chunkStart;
    try {
      parse(buf.subarray(chunkStart, chunkEnd), {
        ...CSV_OPTIONS,
        on_record: (fields: string[], ctx) => {
          // ctx.bytes is the offset just past the record's line break.
          const end = chunkStart + ctx.bytes;
          const first = lines.lineAt(firstContentByte(buf, prevEnd, end));
          const final = lines.lineAt(end - 1);
          for (let l = first + 1; l <= final; l++) {
            if (lines.commasOn(l) >= rowCommas()) {
              throw new SwallowedRowsError(`a quoted field opened here is not closed before line ${l}, which looks like a row of its own`);
            }
          }
          rows.push({ fields, line: first });
          prevEnd = end;
          return null;
        },
      });
      line = last + 1;
    } catch (err) {
      const badLine = lines.lineAt(firstContentByte(buf, prevEnd, chunkEnd));
      broken.push({ line: badLine, reason: describeFailure(err), text: lines.text(badLine) });
      line = badLine + 1;
    }
  }
  return { rows, broken };
}

function describeFailure(err: unknown): string {
  if (err instanceof SwallowedRowsError) return err.message;
  if ((err as CsvError | undefined)?.code === 'CSV_QUOTE_NOT_CLOSED') return 'a quoted field opened here is never closed';
  return err instanceof Error ? err.message : String(err);
}

function unreadable(csvPath: string, reason: string, cause?: unknown): LookalikeError {
  return new LookalikeError('CATALOG_UNREADABLE_CSV', { path: csvPath, reason }, { cause });
}

/** Largest CSV read: the Kaggle styles.csv is 4 MB; a bigger "CSV" is a mistake, not a catalog. */
const MAX_CSV_BYTES = 512 * 1024 * 1024;

/**
 * A regular file's bytes. Opened without blocking, then checked: a named pipe would wait for
 * a writer for ever, and files under /proc say they are empty while some never end (kmsg).
 */
async function readRegularFile(file: string): Promise<Buffer> {
  const handle = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw unreadable(file, 'it is a folder, not a file');
    if (!info.isFile()) throw unreadable(file, 'it is not a regular file (a pipe, socket or device)');
    if (info.size === 0) return Buffer.alloc(0);
    if (info.size > MAX_CSV_BYTES) throw unreadable(file, `it is ${info.size} bytes, too large for a catalog`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

export async function readCsvBytes(csvPath: string): Promise<Buffer> {
  let buf: Buffer;
  try {
    buf = await readRegularFile(csvPath);
  } catch (err) {
    if (err instanceof LookalikeError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === 'EISDIR' ? 'it is a folder, not a file'
        : code === 'EACCES' || code === 'EPERM' ? 'permission denied'
          : (err as Error).message;
    throw unreadable(csvPath, reason, err);
  }
  if ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff)) {
    throw unreadable(csvPath, 'it is saved as UTF-16; save it as UTF-8');
  }
  if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
  if (buf.indexOf(0) !== -1) throw unreadable(csvPath, 'it contains binary data, not text');
  if (buf.indexOf(NEWLINE) === -1 && buf.indexOf(CARRIAGE_RETURN) !== -1) {
    // Classic Mac line endings (Excel's "CSV (Macintosh)"); 0x0d never occurs inside UTF-8 characters.
    buf = Buffer.from(buf);
    for (let i = 0; i < buf.length; i++) if (buf[i] === CARRIAGE_RETURN) buf[i] = NEWLINE;
  }
  return buf;
}

/** Header names become metadata keys, so they must be non-empty and distinct. */
function metadataColumnNames(header: string[], idIndex: number): string[] {
  const used = new Set<string>();
  const names: string[] = [];
  header.forEach((raw, i) => {
    if (i === idIndex) return;
    const base = raw === '' ? `column${i + 1}` : raw;
    let name = base;
    for (let n = 2; used.has(name); n++) name = `${base}_${n}`;
    used.add(name);
    names.push(name);
  });
  return names;
}

/**
 * Cells aligned with the header. Extra fields come from unquoted commas in the last column
 * ("Puma Men Black, White Shoe"), so they are joined back into it; trailing empty ones are
 * just trailing delimiters. Short rows are padded: the real data has empty cells.
 */
function alignCells(fields: string[], width: number): string[] {
  if (fields.length === width) {
    for (let i = 0; i < width; i++) fields[i] = fields[i].trim();
    return fields;
  }
  let end = fields.length;
  while (end > width && fields[end - 1].trim() === '') end--;
  const cells = fields.slice(0, Math.min(end, width));
  if (end > width) cells[width - 1] = fields.slice(width - 1, end).join(',');
  while (cells.length < width) cells.push('');
  return cells.map((c) => c.trim());
}

function guessId(text: string, idIndex: number): string | undefined {
  const cell = text.split(',')[idIndex]?.trim();
  return cell && !cell.includes('"') ? cell : undefined;
}

/** Columns of styles.csv that may hold an item's image URL (case does not matter). */
const LINK_COLUMNS = ['link', 'image_url', 'imageurl', 'image'];

/** http(s)://USER[:PASSWORD]@HOST/... */
function hasCredentials(url: string): boolean {
  try {
    const u = new URL(url);
    return u.username !== '' || u.password !== '';
  } catch {
    // Unparseable (a password with an unescaped '/' or '#'): any '@' may end one.
    return url.includes('@');
  }
}

function isHttpUrl(cell: string | undefined): cell is string {
  return !!cell && /^https?:\/\/\S+$/i.test(cell.trim());
}

/**
 * images.csv as in the larger Kaggle fashion dataset: `filename,link` rows, filename being
 * "<id>.jpg". Only http(s) links count: a CSV must never point a worker at local files.
 */
export async function readImageLinks(csvPath: string): Promise<Map<string, string>> {
  const { rows } = parseCsvRows(await readCsvBytes(csvPath));
  const header = (rows[0]?.fields ?? []).map((h) => h.trim().toLowerCase());
  const file = header.indexOf('filename'), link = header.indexOf('link');
  if (file < 0 || link < 0) throw unreadable(csvPath, `it needs the columns filename and link (header: ${header.join(',')})`);
  const links = new Map<string, string>();
  for (const { fields } of rows.slice(1)) {
    const url = fields[link]?.trim();
    if (isHttpUrl(url)) links.set(fields[file].trim().replace(/\.[^.]+$/, ''), url);
  }
  return links;
}

/**
 * A styles.csv catalog. An item's image is its file in `imagesDir` when there is one, else
 * its http(s) URL: from a link column of styles.csv, or from `links` (images.csv).
 */
export async function readStylesCatalog(root: string, csvPath: string, imagesDir: string, links: Map<string, string> = new Map(), extra?: { files: Map<string, PhotoSource[]>; list?: PhotoList }): Promise<Catalog> {
  const buf = await readCsvBytes(csvPath);
  const { rows, broken } = parseCsvRows(buf);
  if (broken.length > 0 && (rows.length === 0 || broken[0].line < rows[0].line)) {
    throw unreadable(csvPath, `the header row (line ${broken[0].line}) cannot be parsed: ${broken[0].reason}`);
  }
  if (rows.length === 0) throw unreadable(csvPath, 'the file is empty');

  const header = rows[0].fields.map((h) => h.trim());
  const idIndex = header.findIndex((h) => h.toLowerCase() === 'id');
  if (idIndex === -1) throw new LookalikeError('CATALOG_NO_ID_COLUMN', { path: csvPath, header: header.join(',') });
  const columns = metadataColumnNames(header, idIndex);
  const metaIndexes = header.map((_, i) => i).filter((i) => i !== idIndex);
  const linkIndex = header.findIndex((h) => LINK_COLUMNS.includes(h.toLowerCase()));

  const imagesById = await listImagesById(imagesDir);
  const imagesRel = path.relative(root, imagesDir) || '.';
  // path.join normalizes on every call, a measurable cost over 31k items; imagesDir is already normal.
  const imagePrefix = imagesDir.endsWith(path.sep) ? imagesDir : imagesDir + path.sep;
  const items: CatalogItem[] = [];
  const problems: CatalogProblem[] = broken.map((b) => {
    const id = guessId(b.text, idIndex);
    return { kind: 'malformed-row', ...(id !== undefined && { id }), line: b.line, file: csvPath, detail: `${b.reason}; row skipped` };
  });
  const firstLineById = new Map<string, number>();
  // Several photos per product (catalog/photos.ts): which numbered files and folders are further photos.
  const photos = extra && claimPhotos(extra.files, extra.list, new Set(rows.slice(1).map((r) => r.fields[idIndex]?.trim() ?? '')));
  if (extra?.list) problems.push(...extra.list.problems);

  for (let r = 1; r < rows.length; r++) {
    const { fields, line } = rows[r];
    const cells = alignCells(fields, header.length);
    const id = cells[idIndex];
    if (id === '') {
      // A row of nothing but delimiters (",,,,") is spreadsheet padding, not a product.
      if (cells.every((c) => c === '')) continue;
      problems.push({ kind: 'empty-id', line, file: csvPath, detail: 'the id cell is empty; row skipped' });
      continue;
    }
    const firstLine = firstLineById.get(id);
    if (firstLine !== undefined) {
      problems.push({ kind: 'duplicate-id', id, line, file: csvPath, detail: `id already listed on line ${firstLine}; this row is ignored` });
      continue;
    }
    firstLineById.set(id, line);
    const imageName = imagesById.get(id);
    const url = imageName === undefined ? (linkIndex >= 0 && isHttpUrl(cells[linkIndex]) ? cells[linkIndex].trim() : links.get(id)) : undefined;
    if (url !== undefined && hasCredentials(url)) {
      // The index stores each item's image URL, and workers and failure reports pass it on:
      // a password in it would end up in the database, in Redis and on screen.
      problems.push({ kind: 'url-with-credentials', id, line, file: csvPath, detail: `the image URL ${redactUrl(url)} carries a user name or password, which Lookalike does not store; item left out (serve the images without a login, or from images/)` });
      continue;
    }
    const further = photos?.byId.get(id);
    if (imageName === undefined && url === undefined && further) {
      const metadata: Record<string, string> = {};
      for (let c = 0; c < columns.length; c++) metadata[columns[c]] = cells[metaIndexes[c]];
      items.push({ id, imagePath: further[0].imagePath, metadata, photos: further });
      continue;
    }
    if (imageName === undefined && url === undefined) {
      problems.push({
        kind: 'missing-image',
        id,
        line,
        file: csvPath,
        detail: `no ${id}${IMAGE_EXTENSIONS.join('/')} in ${imagesRel}; item left out`,
      });
      continue;
    }
    const metadata: Record<string, string> = {};
    for (let c = 0; c < columns.length; c++) metadata[columns[c]] = cells[metaIndexes[c]];
    items.push({ id, imagePath: url ?? imagePrefix + imageName, metadata, ...(further && { photos: further }) });
  }

  const brokenLineById = new Map<string, number>();
  for (const p of problems) {
    if (p.kind === 'malformed-row' && p.id !== undefined && !brokenLineById.has(p.id)) brokenLineById.set(p.id, p.line!);
  }
  // styles.csv is the list of products: an image it does not list is reported, not indexed
  // (so deleting a product's row removes the product, even with its photo left behind). An
  // image whose row is there but unreadable is still the shop's product: kept, without metadata.
  const unlisted = [...imagesById.keys()].filter((id) => !firstLineById.has(id) && !photos?.claimed.has(id)).sort(compareIds);
  for (const id of unlisted) {
    const imagePath = imagePrefix + imagesById.get(id)!;
    const brokenLine = brokenLineById.get(id);
    if (brokenLine === undefined) {
      problems.push({ kind: 'unlisted-image', id, file: imagePath, detail: `${path.relative(root, imagePath)} has no row in ${path.basename(csvPath)}; not indexed (add a row to index it)` });
      continue;
    }
    const metadata: Record<string, string> = {};
    for (const column of columns) metadata[column] = '';
    items.push({ id, imagePath, metadata });
    problems.push({ kind: 'unlisted-image', id, file: imagePath, detail: `${path.relative(root, imagePath)} has no readable row (line ${brokenLine} is malformed); included with empty metadata` });
  }

  if (items.length === 0) throw new LookalikeError('CATALOG_EMPTY', { path: root });
  // Broken rows were found while parsing, the rest while reading rows: report in file order.
  problems.sort((a, b) => (a.line ?? Number.MAX_SAFE_INTEGER) - (b.line ?? Number.MAX_SAFE_INTEGER));
  return { root, kind: 'styles-csv', columns, items, problems };
}
