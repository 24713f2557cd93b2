/**
 * `lookalike robustness`: shopper photos made from catalog items (busy background, small
 * and off-centre, rotated and cut off, warm dim light, blur and JPEG, other products
 * beside it) query the index; recall of the very product and precision of the rest, per
 * kind, for the plain backbone and every mode of the head.
 */
import path from 'node:path';
import { PERTURBATIONS, type Perturbation } from '../../photo/synthetic.js';
import { LOCALISATIONS, type Localisation } from '../../photo/localise.js';
import { DEFAULT_LOCALISATION } from '../../lookalike.js';
import { indexOption } from '../options.js';
import { action, badOption, intArg, print, printJson, progressBar, table, withIndex, type Command } from '../shared.js';

interface RobustnessFlags {
  index: string; queries: number; seed: number; kinds?: string; localise?: string; attr: string;
  json?: boolean; report?: string; search?: string; expansion?: string;
}

function listOf<T extends string>(value: string | undefined, known: readonly T[], what: string): readonly T[] {
  if (!value) return known;
  const picked = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of picked) if (!(known as readonly string[]).includes(p)) badOption(`unknown ${what} "${p}". Known: ${known.join(', ')}.`);
  return picked as T[];
}

export function registerRobustnessCommand(program: Command): void {
  program.command('robustness')
    .alias('eval-perturb')
    .description('Measure search on shopper photos: catalog items re-photographed (busy background, small and off-centre, rotated and cut off, warm dim light, blur + JPEG, other products beside it) query the index. Reports recall@1/@10 of the very product and precision@5 of the other results, per kind, for the plain backbone and every head mode.')
    .addOption(indexOption())
    .option('--queries <n>', 'number of photos, spread evenly over the kinds', intArg('queries', 1, 100_000), 2000)
    .option('--seed <n>', 'seed of the photos (training views use other seeds and items)', intArg('seed', 0), 1)
    .option('--kinds <list>', `kinds of photo, comma-separated: ${PERTURBATIONS.join(', ')} (default: all)`)
    .option('--localise <list>', `query pooling to compare, comma-separated: ${LOCALISATIONS.join(', ')} (default: centred, the one-pass pooling, and ${DEFAULT_LOCALISATION}, what searches use)`)
    .option('--attr <column>', 'label column of the precision of the other results', 'articleType')
    .option('--expansion <when>', "photo searches with the top result's vector added when it stands out (on, as searches do), without it (off), or both side by side", 'both')
    .option('--search <method>', 'exact (every item scored: the model alone) or ann (through the approximate index, as large catalogs search)', 'exact')
    .option('--json', 'print the result as JSON')
    .option('--report <dir>', 'write an HTML report with CSV tables and a strip of example queries')
    .addHelpText('after', '\nExamples:\n  lookalike robustness --queries 300\n  lookalike robustness --report robustness/ --json > robustness.json')
    .action(action(async (flags: RobustnessFlags) => {
      const { evaluateRobustness, resultKey } = await import('../../lab/eval/robustness.js');
      const { ROBUSTNESS_HEADER, robustnessTableRows, writeRobustnessReport } = await import('../../lab/eval/robustness-report.js');
      const kinds = listOf<Perturbation>(flags.kinds, PERTURBATIONS, 'kind');
      const localisations = flags.localise ? listOf<Localisation>(flags.localise, LOCALISATIONS, 'pooling') : [...new Set<Localisation>(['centred', DEFAULT_LOCALISATION])];
      const [search] = listOf<'exact' | 'ann'>(flags.search, ['exact', 'ann'], 'search method');
      const [expansion] = listOf<'on' | 'off' | 'both'>(flags.expansion, ['both', 'on', 'off'], 'expansion');
      const expansions = expansion === 'on' ? [true] : expansion === 'off' ? [false] : [false, true];
      await withIndex(flags.index, async (lookalike) => {
        const bar = progressBar('photographing and querying', 'photos', flags.json ? false : undefined);
        bar.start(flags.queries);
        const started = performance.now();
        const result = await evaluateRobustness(lookalike, {
          queries: flags.queries, seed: flags.seed, kinds, localisations, attribute: flags.attr, search, expansion,
          onProgress: (done) => bar.update(done, done / Math.max(1e-3, (performance.now() - started) / 1000)),
        });
        bar.stop();
        if (flags.json) printJson({ ...result, examples: result.examples.map(({ photo: _photo, ...rest }) => rest) });
        else {
          const f3 = (c: string | number) => (typeof c === 'number' && !Number.isInteger(c) ? c.toFixed(3) : String(c));
          print(table([ROBUSTNESS_HEADER, ...robustnessTableRows(result.rows).map((r) => r.map(f3))]));
        }
        if (flags.report) {
          const def = lookalike.head ? `head ${lookalike.head.head.meta.defaultMode} (default), photo search` : 'plain';
          const keys = [...new Set(['plain', def])].flatMap((s) => localisations.flatMap((l) => expansions.map((e) => resultKey(s, l, e))));
          const report = await writeRobustnessReport(flags.report, result, lookalike, keys);
          process.stderr.write(`report: ${path.resolve(report.html)}\n`);
        }
        process.stderr.write(`${result.queries} photos in ${result.seconds.toFixed(1)} s\n`);
      });
    }));
}
