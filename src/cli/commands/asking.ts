/**
 * `lookalike eval-asking`: the measurements of docs/asking.md (recommend from examples,
 * words, shop the look) on an index of the dev catalog.
 */
import { measureRecommend, measureShopTheLook, measureText } from '../../eval/asking.js';
import { action, indexOption, intArg, print, printJson, table, withIndex, type Command } from '../shared.js';

const f3 = (v: number) => v.toFixed(3);
const ms = (v: number) => `${v.toFixed(1)} ms`;

export function registerAskingCommand(program: Command): void {
  program.command('eval-asking')
    .description('Measure recommend from examples, text search and shop the look on an index of a catalog with styles.csv labels (docs/asking.md).')
    .addOption(indexOption())
    .option('--visits <n>', 'shopping visits for recommend (0: skip)', intArg('visits', 0), 200)
    .option('--scenes <n>', 'scene photos for shop the look (0: skip)', intArg('scenes', 0), 100)
    .option('--no-text', 'skip the text queries')
    .option('--seed <n>', 'seed of the visits and scenes drawn', intArg('seed', 0), 26)
    .option('--json', 'print JSON')
    .action(action(async (flags: { index: string; visits: number; scenes: number; text: boolean; seed: number; json?: boolean }) => {
      await withIndex(flags.index, async (lookalike) => {
        const result = {
          recommend: flags.visits ? await measureRecommend(lookalike, flags.visits, flags.seed) : undefined,
          text: flags.text ? await measureText(lookalike) : undefined,
          shopTheLook: flags.scenes ? [await measureShopTheLook(lookalike, flags.scenes, flags.seed), await measureShopTheLook(lookalike, flags.scenes, flags.seed, 'busy')] : undefined,
        };
        if (flags.json) return printJson(result);
        if (result.recommend) {
          print(`recommend: ${result.recommend.visits} visits (3 liked of one articleType and colour, 1 disliked of another colour); share of the top 10 with the liked articleType and colour`);
          print(table([['way', 'liked type+colour', 'disliked colour'], ...result.recommend.ways.map((w) => [w.name, f3(w.share), f3(w.dislikedShare)])]));
          print(`median latency: recommend ${ms(result.recommend.medianMs)}, similar (one item) ${ms(result.recommend.singleMs)}`);
        }
        if (result.text) {
          print(`text: precision of all matches ${f3(result.text.precision)}, of the first 10 ${f3(result.text.precisionAt10)}, median latency ${ms(result.text.medianMs)}`);
          print(table([['query', 'matches', 'precision', 'precision@10', 'latency'], ...result.text.queries.map((q) => [q.text, String(q.matches), f3(q.precision), f3(q.precisionAt10), ms(q.ms)])]));
        }
        for (const s of result.shopTheLook ?? []) {
          print(`shop the look, ${s.background} background: ${s.scenes} scenes, ${s.products} products placed, ${s.regionsPerScene.toFixed(2)} regions per scene`);
          print(`very product in the top 10: whole photo ${f3(s.wholePhoto)}, some region ${f3(s.someRegion)}, either ${f3(s.eitherList)}; median latency whole ${ms(s.wholeMs)}, shop the look ${ms(s.lookMs)}`);
        }
      });
    }));
}
