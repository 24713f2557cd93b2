/**
 * Products as shops have them: `lookalike duplicates` lists groups of near-identical
 * product photos (the same packshot under two ids, re-uploads), as a table, JSON or CSV.
 */
import { DUPLICATE_NEIGHBOURS, DUPLICATE_THRESHOLD, SHOWN_COLUMNS } from '../../defaults.js';
import { indexOption } from '../options.js';
import { action, floatArg, intArg, print, printJson, progressBar, table, withIndex, type Command } from '../shared.js';
import { writeCsv } from '../csv.js';

/** Groups printed in full by the plain-text report; --json and --csv hold them all. */
const SHOWN_GROUPS = 20;

export function registerProductCommands(program: Command): void {
  program.command('duplicates')
    .description('List groups of products whose photos are near-identical (the same photo under two ids, re-uploads): each product\'s nearest neighbours by the cosine of their stored vectors, pairs at or above the threshold joined into groups.')
    .addOption(indexOption())
    .option('-t, --threshold <cosine>', `cosine at or above which two photos are near-duplicates (default ${DUPLICATE_THRESHOLD}, measured on the dev catalog: docs/products.md)`, floatArg('threshold', -1, 1))
    .option('--neighbours <n>', `nearest neighbours of each product compared (default ${DUPLICATE_NEIGHBOURS})`, intArg('neighbours', 1, 100))
    .option('--csv <file>', 'write every group as CSV: group, size, id, score_min, score_max, then the catalog columns ("-" for stdout)')
    .option('--json', 'print every group as JSON')
    .addHelpText('after', '\nExamples:\n  lookalike duplicates\n  lookalike duplicates --threshold 0.95 --csv duplicates.csv\n  lookalike duplicates --json > duplicates.json')
    .action(action(async (flags: { index: string; threshold?: number; neighbours?: number; csv?: string; json?: boolean }) => {
      await withIndex(flags.index, async (lookalike) => {
        const bar = progressBar('comparing', 'items', flags.json || flags.csv === '-' ? false : undefined);
        bar.start(lookalike.size);
        const report = await lookalike.duplicates({ threshold: flags.threshold, neighbours: flags.neighbours, onProgress: (done) => bar.update(done) });
        bar.stop();
        const columns = lookalike.manifest.catalog.columns;
        if (flags.csv) {
          await writeCsv(flags.csv, ['group', 'size', 'id', 'score_min', 'score_max', ...columns], report.groups.flatMap((g, i) => g.items.map((item) => [
            String(i + 1), String(g.items.length), item.id, g.minScore.toFixed(4), g.maxScore.toFixed(4), ...columns.map((c) => item.metadata[c] ?? ''),
          ])));
        }
        if (flags.json) return printJson(report);
        if (flags.csv === '-') return;
        print(`${report.groups.length.toLocaleString('en-US')} group(s) of near-duplicates, ${report.duplicated.toLocaleString('en-US')} of ${report.items.toLocaleString('en-US')} products, at cosine >= ${report.threshold} (${report.space})${flags.csv ? `; all of them in ${flags.csv}` : ''}`);
        if (!report.groups.length) return;
        const shown = SHOWN_COLUMNS.filter((c) => columns.includes(c));
        print(table([
          ['group', 'id', 'cosine', ...shown],
          ...report.groups.slice(0, SHOWN_GROUPS).flatMap((g, i) => g.items.map((item, j) => [
            j === 0 ? String(i + 1) : '', item.id, j === 0 ? (g.minScore === g.maxScore ? g.minScore.toFixed(4) : `${g.minScore.toFixed(4)}-${g.maxScore.toFixed(4)}`) : '', ...shown.map((c) => item.metadata[c] ?? ''),
          ])),
        ]));
        if (report.groups.length > SHOWN_GROUPS) print(`... and ${report.groups.length - SHOWN_GROUPS} more group(s): --csv FILE or --json lists them all`);
      });
    }));
}
