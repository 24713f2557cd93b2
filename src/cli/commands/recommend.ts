/**
 * `lookalike recommend`: products like some examples and unlike others, or every item's
 * nearest neighbours as CSV.
 */
import { existsSync } from 'node:fs';
import { Option } from 'commander';
import { DEFAULT_K } from '../../defaults.js';
import type { Example } from '../../lookalike.js';
import { RECOMMEND_STRATEGIES, type RecommendStrategy } from '../../search/recommend.js';
import { writeCsv } from '../csv.js';
import { searchOptions } from '../options.js';
import { printResponse, searchFlags, type SearchFlags } from '../search.js';
import { action, badOption, collect, progressBar, withIndex, type Command } from '../shared.js';

export function registerRecommendCommand(program: Command): void {
  searchOptions(program.command('recommend')
    .description('With --like: products like the liked examples and unlike the --unlike ones (catalog ids or photos), the examples themselves left out. Without --like: the top-k similar products of every catalog item, as CSV (query_id, rank, id, score).')
    .option('--like <ids>', 'liked examples, comma-separated: catalog ids, or photo files (repeatable)', collect, [])
    .option('--unlike <ids>', 'disliked examples ("not this"), as --like (repeatable)', collect, [])
    .addOption(new Option('--strategy <way>', 'how examples combine: average (default), best_score, sum_scores (docs/asking.md)').choices([...RECOMMEND_STRATEGIES]))
    .option('-o, --out <file>', 'without --like: output CSV ("-" for stdout)', 'recommendations.csv')
    .addHelpText('after', '\nExamples:\n  lookalike recommend --like 15970,39386,21379 --unlike 59263 -k 10\n  lookalike recommend --like photo.jpg --unlike 59263\n  lookalike recommend -k 5 --out recommendations.csv   # every item\'s neighbours'))
    .action(action(async (flags: SearchFlags & { like: string[]; unlike: string[]; strategy?: RecommendStrategy; out: string }) => {
      const like = flags.like.flatMap(splitList), unlike = flags.unlike.flatMap(splitList);
      if (!like.length && unlike.length) badOption('--unlike needs --like: say what you like as well.');
      if (!like.length && (flags.filter.length || flags.threshold !== undefined || flags.text !== undefined || flags.strategy || flags.search || flags.json)) {
        badOption('--filter, --threshold, --text, --search, --strategy and --json go with --like; the CSV of every item\'s neighbours takes -k, --pooling, --mode and --out.');
      }
      await withIndex(flags.index, async (lookalike) => {
        if (like.length) {
          const example = (value: string): Example => (lookalike.has(value) || !existsSync(value) ? { id: value } : { image: value, label: value });
          const response = await lookalike.recommend({ ...searchFlags(flags, lookalike.manifest.catalog.columns), like: like.map(example), unlike: unlike.map(example), strategy: flags.strategy });
          printResponse(response, flags, lookalike.manifest.catalog.columns);
          return;
        }
        const k = flags.k ?? DEFAULT_K;
        const bar = progressBar('recommending', 'items');
        bar.start(lookalike.size);
        const started = performance.now();
        const rec = await lookalike.recommendAll(k, {
          pooling: flags.pooling, mode: flags.mode,
          onProgress: (done) => bar.update(done, done / ((performance.now() - started) / 1000)),
        });
        bar.stop();
        const rows: string[][] = [];
        for (let q = 0; q < rec.ids.length; q++) {
          for (let j = 0; j < rec.k; j++) {
            const row = rec.rows[q * rec.k + j];
            if (row < 0) continue;
            rows.push([rec.ids[q], String(j + 1), rec.ids[row], String(rec.scores[q * rec.k + j])]);
          }
        }
        await writeCsv(flags.out, ['query_id', 'rank', 'id', 'score'], rows);
        if (flags.out !== '-') process.stderr.write(`wrote ${rows.length} recommendations for ${rec.ids.length} items to ${flags.out} in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      });
    }));
}

/** "a,b, c" as ["a", "b", "c"]. */
function splitList(value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter(Boolean);
}
