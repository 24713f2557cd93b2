/**
 * `lookalike train`: a fashion head over the frozen backbone, learnt from the catalog's
 * own labels (train/train.ts), or `--off` to go back to plain ImageNet features.
 */
import type { TrainReport } from '../../train/train.js';
import { Option } from 'commander';
import { describeLocation } from '../../store/location.js';
import { removeHead } from '../../head/index-head.js';
import { DEFAULT_MODE, DEFAULT_VIEWS, HEAD_LABELS } from '../../defaults.js';
import { MODES, writeHeadFile, type Mode } from '../../head/head.js';
import { indexOption } from '../options.js';
import { action, badOption, floatArg, intArg, print, printJson, table, type Command } from '../shared.js';

interface TrainFlags {
  index: string;
  labels?: string;
  dim?: number;
  epochs?: number;
  holdout: number;
  defaultMode: Mode;
  save?: string;
  off?: boolean;
  seed: number;
  shrinkage?: number;
  /** A count, or false for --no-views. */
  views?: number | false;
  viewPull?: number;
  json?: boolean;
}

export function registerTrainCommand(program: Command): void {
  program.command('train')
    .description('Learn a fashion head from the catalog\'s own labels over the stored backbone vectors (no CNN re-run, minutes on a CPU) and make it the index\'s embedding. --off goes back to plain ImageNet features.')
    .addOption(indexOption())
    .option('--labels <columns>', `label columns to learn, comma-separated, each with an optional loss weight (column:2); default: those of ${HEAD_LABELS.join(',')} the catalog has (gender weighted 2, subCategory and masterCategory 0.5). Colour columns shape the colour part`)
    .option('--dim <n>', 'width of the style part of the embedding', intArg('dim', 8, 1024))
    .option('--epochs <n>', 'most epochs (training stops earlier when held-out figures stop improving)', intArg('epochs', 1, 500))
    .option('--holdout <share>', 'share of items (by id hash) never trained on: validation, early stopping and the reported figures', floatArg('holdout', 0.01, 0.9), 0.2)
    .addOption(new Option('--default-mode <mode>', 'similarity used when a search names no --mode').choices([...MODES]).default(DEFAULT_MODE))
    .option('--save <file>', 'also write the head to a file, to apply to another catalog: lookalike index OTHER --head FILE')
    .option('--off', 'remove the head: search plain ImageNet features again')
    .option('--seed <n>', 'random seed', intArg('seed', 0), 1)
    .option('--shrinkage <s>', 'regularised whitening: each principal component scaled by 1/sqrt(variance + s x mean variance); 0 whitens fully (default: WHITENING_SHRINKAGE)', floatArg('shrinkage', 0, 1000))
    .option('--views <n>', `shopper photos of training items (busy background, small, tilted, dim light, blur, neighbours) to learn from besides the packshots: embedded once, stored with the index, reused by later runs (default ${DEFAULT_VIEWS})`, intArg('views', 1, 100_000))
    .option('--no-views', 'learn from the packshots only')
    .option('--view-pull <w>', 'loss weight pulling each view toward its own item (0: views count only as labelled samples; default: VIEW_PULL)', floatArg('view-pull', 0, 100))
    .option('--json', 'print the report as JSON')
    .addHelpText('after', `
Modes (lookalike query/similar/recommend/export/eval --mode, and the web page):
  style     shape, type and use of the product; colour ignored
  balanced  style and colour together (default)
  colour    same colour first, then similar style

Examples:
  lookalike train
  lookalike train --labels articleType,gender,baseColour,usage --dim 256 --save head.lkhead
  lookalike eval --queries 0.2 --mode colour       # held-out figures, never the trained items
  lookalike train --off`)
    .action(action(async (flags: TrainFlags) => {
      const { parseLabelSpec, trainHead } = await import('../../train/train.js');
      if (flags.off) {
        if (flags.labels || flags.dim || flags.epochs || flags.save || typeof flags.views === 'number') badOption('--off removes the head; it takes no training options.');
        const had = await removeHead(flags.index);
        print(had ? `removed the head: ${describeLocation(flags.index)} searches plain ImageNet features again.` : `${describeLocation(flags.index)} has no head: it already searches plain ImageNet features.`);
        return;
      }
      const spec = flags.labels !== undefined ? parseLabelSpec(flags.labels) : undefined;
      const say = (m: string) => process.stderr.write(`${m}\n`);
      const report = await trainHead({
        indexDir: flags.index,
        labels: spec?.labels,
        taskWeights: spec?.weights,
        dim: flags.dim,
        epochs: flags.epochs,
        holdout: flags.holdout,
        seed: flags.seed, shrinkage: flags.shrinkage,
        views: flags.views === false ? 0 : flags.views, viewPull: flags.viewPull,
        defaultMode: flags.defaultMode,
        log: say,
        onViews: (done, total) => { if (done === total || done % 400 < 8) say(`views: ${done}/${total} embedded`); },
        onEpoch: (e) => say(`epoch ${String(e.epoch).padStart(2)}/${e.epochs}  loss ${fmt(e.loss, 2)}  held-out p@5 ${fmt(e.validation, 3)}${e.best ? '  *' : ''}  (${e.seconds.toFixed(1)} s)`),
      });
      if (flags.save) await writeHeadFile(report.head, flags.save);
      if (flags.json) {
        printJson({ ...summary(report), saved: flags.save });
        return;
      }
      const viewNote = report.views ? ` and ${report.views.count} shopper photos of them (${report.views.embedded} embedded now, ${report.views.seconds.toFixed(0)} s)` : '';
      print(`trained in ${report.seconds.toFixed(0)} s on ${report.trainItems} items${viewNote} (best epoch ${report.bestEpoch} of ${report.epochs.length}); ${report.heldOutItems} held out`);
      if (report.comparison.length) {
        print(`\nheld-out items (${Math.round(report.head.meta.holdout.fraction * 100)}% by id hash) querying the training items, k=5:`);
        print(table([
          ['attribute', 'metric', report.baseline, ...MODES.map((m) => `head ${m}`)],
          ...report.comparison.map((r) => [r.attribute, r.metric, r.backbone.toFixed(3), ...MODES.map((m) => r.head[m].toFixed(3))]),
        ]));
      } else {
        print('no held-out items with labels: no before/after figures (index more items, or raise --holdout).');
      }
      print(`\nthe index at ${describeLocation(flags.index)} now searches with the head (default mode ${report.head.meta.defaultMode}; --mode ${MODES.join('|')}); lookalike train --off undoes it.`);
      if (flags.save) print(`head written to ${flags.save}: lookalike index OTHER_CATALOG --head ${flags.save}`);
    }));
}

function fmt(values: Record<string, number>, digits: number): string {
  return Object.entries(values).map(([k, v]) => `${k} ${v.toFixed(digits)}`).join(', ') || '-';
}

function summary(report: TrainReport) {
  return {
    head: report.head.id,
    labels: report.labels.tasks.map((t) => ({ column: t.column, kind: t.kind, classes: t.classes.length, missing: t.missing, merged: t.merged, rare: t.rare })),
    skipped: report.labels.skipped,
    items: report.items,
    trainItems: report.trainItems,
    heldOutItems: report.heldOutItems,
    seconds: report.seconds,
    views: report.views,
    bestEpoch: report.bestEpoch,
    epochs: report.epochs,
    baseline: report.baseline,
    comparison: report.comparison,
  };
}
