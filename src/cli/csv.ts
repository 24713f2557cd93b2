/** CSV output of the commands that write tables (export, recommend, duplicates). */
import { createWriteStream } from 'node:fs';
import { stringify } from 'csv-stringify';

/** Writes rows as RFC 4180 CSV to a file, or to stdout for "-". */
export async function writeCsv(file: string, header: string[], rows: Iterable<string[]>): Promise<void> {
  const out = file === '-' ? process.stdout : createWriteStream(file);
  const csv = stringify({ header: true, columns: header });
  csv.pipe(out, { end: file !== '-' });
  for (const row of rows) {
    if (!csv.write(row)) await new Promise((resolve) => csv.once('drain', resolve));
  }
  csv.end();
  await new Promise<void>((resolve, reject) => {
    if (file === '-') csv.on('end', resolve);
    else (out as NodeJS.WritableStream).on('finish', resolve);
    csv.on('error', reject);
    out.on('error', reject);
  });
}
