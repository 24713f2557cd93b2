/**
 * `lookalike tune`: sweep the settings that change recommendations and show quality
 * against speed and memory; `--apply` stores the best search settings in the index.
 */
import type { ImageSetting } from '../../lab/tune/tune.js';
import { describeLocation } from '../../store/location.js';
import path from 'node:path';
import { InvalidArgumentError } from 'commander';
import { DEFAULT_IMAGE_SETTINGS, DEFAULT_K } from '../../defaults.js';
import { POOLINGS, type Pooling, type ResizeMode } from '../../model/registry.js';
import { indexOption } from '../options.js';
import { action, collect, floatArg, intArg, print, printJson, progressBar, table, withIndex, type Command } from '../shared.js';

interface TuneFlags {
  index: string; sample: number; sizes?: Array<{ width: number; height: number }>; resize?: ResizeMode[]; dims: number[]; k: number[];
  pooling: Pooling[]; compareK: number; attr: string[]; targetPrecision: number; querySample: number; catalog?: string;
  report?: string; apply?: boolean; json?: boolean;
}

const list = <T>(name: string, parse: (s: string) => T) => (value: string): T[] => {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (!items.length) throw new InvalidArgumentError(`${name} needs at least one value.`);
  return items.map(parse);
};

const sizeArg = (s: string) => {
  const m = /^(\d+)x(\d+)$/.exec(s);
  if (!m || Number(m[1]) < 32 || Number(m[2]) < 32 || Number(m[1]) > 1024 || Number(m[2]) > 1024) {
    throw new InvalidArgumentError(`sizes look like 224x224 or 168x224 (width x height, 32 to 1024), not "${s}".`);
  }
  return { width: Number(m[1]), height: Number(m[2]) };
};
const oneOf = <T extends string>(name: string, allowed: readonly T[]) => (s: string): T => {
  if (!allowed.includes(s as T)) throw new InvalidArgumentError(`${name} must be one of ${allowed.join(', ')}, not "${s}".`);
  return s as T;
};
const fmt = (c: string | number) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c < 10 ? c.toFixed(3) : c.toFixed(1)) : c);

const describeSettings = (list: readonly ImageSetting[]) => list.map((s) => `${s.width}x${s.height} ${s.resize}`).join(', ');

/** --sizes x --resize when either is given, else the default list. */
function imageSettings(flags: TuneFlags): readonly ImageSetting[] {
  if (!flags.sizes && !flags.resize) return DEFAULT_IMAGE_SETTINGS;
  const sizes = flags.sizes ?? [{ width: 224, height: 224 }];
  const resizes = flags.resize ?? ['stretch'];
  return sizes.flatMap((s) => resizes.map((resize) => ({ ...s, resize })));
}

export function registerTuneCommand(program: Command): void {
  program.command('tune')
    .description('Sweep the settings that change recommendations (pooling, embedding size, k, similarity threshold on the whole index; input size and resize mode on a re-embedded sample) and show quality against speed and memory. --apply stores the best search settings in the index.')
    .addOption(indexOption())
    .option('--sample <n>', 'items re-embedded per image setting (stratified by articleType); 0 skips the image settings', intArg('sample', 0), 1000)
    .option('--sizes <list>', 'input sizes to try, width x height (photos are 3:4, so 168x224 keeps their aspect), each with every --resize mode', list('sizes', sizeArg))
    .option('--resize <list>', 'resize modes to try: stretch, pad, crop (with --sizes, or alone with 224x224)', list('resize', oneOf('resize', ['stretch', 'pad', 'crop'] as const)))
    .option('--dims <list>', 'embedding sizes to try (PCA fitted on the catalog)', list('dims', intArg('dims', 2, 8192)), [2048, 1024, 512, 256, 128])
    .option('--k <list>', 'numbers of neighbours to try', list('k', intArg('k', 1, 200)), [1, 5, 10, 20])
    .option('--pooling <list>', 'poolings to try', list('pooling', oneOf('pooling', POOLINGS)), [...POOLINGS] as Pooling[])
    .option('--compare-k <n>', 'the k at which settings are compared', intArg('compare-k', 1, 200), DEFAULT_K)
    .option('--attr <column>', 'attribute that defines a good neighbour (first one; default articleType) and others to report; repeatable', collect, [])
    .option('--target-precision <p>', 'precision that k and the threshold must keep', floatArg('target-precision', 0.01, 1), 0.8)
    .option('--query-sample <n>', 'query items for the stored-vector sweep, each searching the whole index; 0 = every item', intArg('query-sample', 0), 8000)
    .option('--catalog <dir>', 'catalog folder for re-embedding (default: the one the index was built from)')
    .option('--report <dir>', 'write a report folder (index.html with tuning curves, CSV tables)')
    .option('--apply', 'store the best pooling, k and threshold as the index\'s search defaults')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `\nImage settings tried by default: ${describeSettings(DEFAULT_IMAGE_SETTINGS)}.\n\nExamples:\n  lookalike tune --report tune-report\n  lookalike tune --sample 0 --apply                 # stored-vector settings only, then apply\n  lookalike tune --sizes 224x224,128x128 --resize stretch --sample 2000`)
    .action(action(async (flags: TuneFlags) => {
      const { applyTuned, rebuildCommand, tune } = await import('../../lab/tune/tune.js');
      const { bestLines, imageTable, vectorTable, writeTuneReport } = await import('../../lab/tune/report.js');
      await withIndex(flags.index, async (lookalike) => {
        const log = (m: string) => process.stderr.write(`${m}\n`);
        let stage = '';
        let bar = progressBar('', '', false);
        const result = await tune(lookalike, {
          poolings: flags.pooling, dims: flags.dims, ks: flags.k, compareK: flags.compareK, attributes: flags.attr,
          targetPrecision: flags.targetPrecision, querySample: flags.querySample,
          imageSettings: imageSettings(flags), sample: flags.sample, catalogDir: flags.catalog,
          log: (m) => { bar.stop(); stage = ''; log(m); },
          onProgress: (s, done, total) => {
            if (s !== stage) {
              bar.stop();
              stage = s;
              bar = progressBar(s.padEnd(16), 'items', process.stderr.isTTY === true);
              bar.start(total);
            }
            bar.update(done);
          },
        });
        bar.stop();
        const catalog = result.image?.catalog ?? lookalike.manifest.catalog.root;
        const chosen = result.best.image?.cheapest;
        const rebuild = chosen && !chosen.current ? rebuildCommand(catalog, lookalike.indexDir, chosen, lookalike.settings.precision) : undefined;
        let applied;
        if (flags.apply) applied = await applyTuned(lookalike, result);
        let reportFile: string | undefined;
        if (flags.report) reportFile = (await writeTuneReport(flags.report, result, rebuild)).html;
        if (flags.json) {
          printJson({ ...result, rebuild, applied });
        } else {
          const vt = vectorTable(result, true);
          print(vt.caption);
          print(table([vt.header, ...vt.rows.map((r) => r.map(fmt))]));
          print('(every k: --report or --json)');
          const it = imageTable(result);
          if (it) {
            print('');
            print(`IMAGE SETTINGS ARE EVALUATED ON A SAMPLE: ${it.caption}`);
            print(table([it.header, ...it.rows.map((r) => r.map(fmt))]));
          }
          print('');
          print('suggested:');
          for (const line of bestLines(result, rebuild)) print(`  ${line}`);
        }
        const done = `tuned in ${result.seconds.total.toFixed(1)} s (stored vectors ${result.seconds.vector.toFixed(1)} s, image settings ${result.seconds.image.toFixed(1)} s)`;
        if (flags.json) log(done); else print(done);
        if (applied) log(`applied to ${describeLocation(lookalike.indexDir)}: pooling ${applied.pooling}, k ${applied.k}, threshold ${applied.threshold ?? 'none'} (searches use them unless told otherwise)`);
        else if (!flags.json) print('apply the pooling, k and threshold with --apply');
        if (reportFile) log(`report: ${path.resolve(reportFile)}`);
      });
    }));
}
