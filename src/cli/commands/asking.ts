/**
 * `lookalike eval-asking`: the measurements of docs/asking.md (recommend from examples,
 * words, shop the look) on an index of the dev catalog.
 */
import { indexOption } from '../options.js';
import { action, intArg, print, printJson, table, withIndex, type Command } from '../shared.js';

const f3 = (v: number) => v.toFixed(3);
const ms = (v: number) => `${v.toFixed(1)} ms`;

export function registerAskingCommand(program: Command): void {
  program.command('eval-asking')
    .description('Measure recommend from examples, text search and shop the look on an index of a catalog with styles.csv labels (docs/asking.md).')
    .addOption(indexOption())
    .option('--visits <n>', 'shopping visits for recommend (0: skip)', intArg('visits', 0), 200)
    .option('--scenes <n>', 'scene photos for shop the look (0: skip)', intArg('scenes', 0), 100)
    .option('--no-text', 'skip the text queries')
    .option('--photo-words <n>', 'catalog photos searched with the name of another colour ("this, but in red"; 0: skip)', intArg('photo-words', 0), 100)
    .option('--seed <n>', 'seed of the visits and scenes drawn', intArg('seed', 0), 26)
    .option('--json', 'print JSON')
    .action(action(async (flags: { index: string; visits: number; scenes: number; text: boolean; photoWords: number; seed: number; json?: boolean }) => {
      const { measurePhotoPlusWords, measureRecommend, measureShopTheLook, measureText } = await import('../../lab/eval/asking.js');
      await withIndex(flags.index, async (lookalike) => {
        const result = {
          recommend: flags.visits ? await measureRecommend(lookalike, flags.visits, flags.seed) : undefined,
          text: flags.text ? await measureText(lookalike) : undefined,
          photoWords: flags.photoWords ? await measurePhotoPlusWords(lookalike, flags.photoWords, flags.seed) : undefined,
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
        if (result.photoWords) {
          print(`photo + words: ${result.photoWords.queries} catalog photos with another colour's name; share of the top 10 with the photo's articleType in that colour (and with its articleType)`);
          print(table([['way', 'type in the colour', 'type'], ...result.photoWords.ways.map((w) => [w.name, f3(w.share), f3(w.typeShare)])]));
          print(`median latency with words (filter): ${ms(result.photoWords.medianMs)}`);
        }
        for (const s of result.shopTheLook ?? []) {
          print(`shop the look, ${s.background} background: ${s.scenes} scenes, ${s.products} products placed, ${s.regionsPerScene.toFixed(2)} regions per scene`);
          print(`very product in the top 10: whole photo ${f3(s.wholePhoto)}, some region ${f3(s.someRegion)}, either ${f3(s.eitherList)}; median latency whole ${ms(s.wholeMs)}, shop the look ${ms(s.lookMs)}`);
        }
      });
    }));
}
