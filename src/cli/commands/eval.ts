/**
 * `lookalike eval`: how good are the recommendations? Leave-one-out (or held-out) retrieval
 * quality of the index against the catalog's own labels, as a terminal table, JSON, and
 * a report folder with charts and CSV tables.
 */
import type { IndexEvalResult } from '../../lab/eval/evaluate-index.js';
import type * as EvalReport from '../../lab/eval/report.js';
import { headRefOf } from '../../head/index-head.js';
import { DEFAULT_K } from '../../defaults.js';
import type { SearchMethod } from '../../search/engine.js';
import { Option } from 'commander';
import path from 'node:path';
import type { Pooling } from '../../model/registry.js';
import { indexOption, modeOption, poolingOption } from '../options.js';
import { action, collect, floatArg, intArg, print, printJson, progressBar, table, withIndex, type Command } from '../shared.js';

interface EvalFlags {
  index: string; k: number; attr: string[]; queries?: number; pooling?: Pooling; mode?: string; search?: SearchMethod;
  json?: boolean; report?: string; perClass?: boolean;
}

const f3 = (v: number) => v.toFixed(3);

/** `report`: lab/eval/report.ts, loaded by the command. */
export function printEvalTable(result: IndexEvalResult, { describeProtocol, metricHeader, metricRows }: typeof EvalReport): void {
  print(`${result.space}, ${describeProtocol(result)}, k=${result.k}`);
  print(table([
    metricHeader(result.k),
    ...metricRows(result).map((r) => r.map((c) => (typeof c === 'number' && !Number.isInteger(c) ? f3(c) : String(c)))),
  ]));
}

function printPerClass(result: IndexEvalResult, limit: number): void {
  for (const a of result.attributes) {
    print('');
    print(`${a.attribute}: per class (${Math.min(limit, a.perClass.length)} most frequent of ${a.perClass.length})`);
    print(table([
      ['value', 'queries', 'precision@1', `precision@${result.k}`, 'kNN precision', 'kNN recall', 'kNN F1'],
      ...a.perClass.slice(0, limit).map((c) => [c.value, String(c.support), f3(c.precisionAt1), f3(c.precisionAtK), f3(c.knnPrecision), f3(c.knnRecall), f3(c.knnF1)]),
    ]));
    if (a.confusion.counts.length > 1) {
      print(`${a.attribute}: kNN confusion (rows: true value, columns: predicted)`);
      print(table([['', ...a.confusion.labels], ...a.confusion.counts.map((row, i) => [a.confusion.labels[i], ...row.map(String)])]));
    }
  }
}

export function registerEvalCommand(program: Command): void {
  program.command('eval')
    .description('Measure recommendation quality: every item (or a held-out share) queries the rest, and its neighbours are scored against the catalog\'s labels (precision@1, precision@k, mAP@k, kNN accuracy and macro-F1 per attribute).')
    .addOption(indexOption())
    .option('-k, --k <n>', 'neighbours per query', intArg('k', 1, 1000), DEFAULT_K)
    .option('--attr <column>', 'attribute (CSV column) to score against; repeatable (default: articleType, subCategory, masterCategory, gender, baseColour, usage)', collect, [])
    .option('--queries <fraction>', 'evaluate a held-out share of items (stable split by id hash) against the other items only, e.g. 0.2', floatArg('queries', 0, 1))
    .addOption(poolingOption())
    .addOption(modeOption())
    .addOption(new Option('--search <method>', 'find neighbours exactly (default) or through the ANN index, as searches do (to compare the two)').choices(['exact', 'ann']))
    .option('--per-class', 'also print per-class tables and confusion matrices (10 most frequent classes)')
    .option('--json', 'print the full result as JSON')
    .option('--report <dir>', 'write a report folder: index.html with charts, PNG/SVG charts, CSV tables')
    .addHelpText('after', '\nExamples:\n  lookalike eval -k 5\n  lookalike eval --attr articleType --attr gender --queries 0.2 --json\n  lookalike eval --report eval-report')
    .action(action(async (flags: EvalFlags) => {
      const { evaluateIndex } = await import('../../lab/eval/evaluate-index.js');
      const report = await import('../../lab/eval/report.js');
      const { CATEGORY_FIELDS, writeEvalReport } = report;
      const { mapData, readMapFile } = await import('../../lab/viz/map.js');
      const started = performance.now();
      await withIndex(flags.index, async (lookalike) => {
        const head = headRefOf(lookalike.manifest);
        // A head trained on this catalog has seen every item outside its hold-out share:
        // figures over those items flatter it.
        if (head && !flags.pooling && head.trainedOn === lookalike.manifest.catalog.root && flags.queries !== head.holdout) {
          process.stderr.write(`note: this index's head was trained on all items but a held-out share of ${head.holdout}; for honest figures run with --queries ${head.holdout}.\n`);
        }
        const bar = progressBar('evaluating', 'queries', process.stderr.isTTY === true && !flags.json);
        let barStarted = false;
        const result = await evaluateIndex(lookalike, {
          k: flags.k, attributes: flags.attr, queries: flags.queries, pooling: flags.pooling, mode: flags.mode, search: flags.search,
          onProgress: (done, total) => {
            if (!barStarted) { bar.start(total); barStarted = true; }
            bar.update(done);
          },
        });
        bar.stop();
        if (flags.json) printJson(result);
        else {
          printEvalTable(result, report);
          if (flags.perClass) printPerClass(result, 10);
        }
        if (flags.report) {
          const columns = lookalike.manifest.catalog.columns;
          const fields = CATEGORY_FIELDS.filter((c) => columns.includes(c));
          const facets = lookalike.facets(fields.length ? fields : result.attributes.map((a) => a.attribute).slice(0, 4));
          const stored = await readMapFile(lookalike);
          const report = await writeEvalReport(flags.report, {
            result,
            categories: facets,
            scores: { attribute: result.scores.attribute, histogram: result.scores.histogram },
            map: stored ? mapData(lookalike, stored, result.attributes[0]?.attribute) : undefined,
          });
          process.stderr.write(`report: ${path.resolve(report.html)}${stored ? '' : ' (no map yet: run `lookalike map` to add one)'}\n`);
        }
        const seconds = (performance.now() - started) / 1000;
        const line = `evaluated ${result.queries} queries in ${result.seconds.toFixed(1)} s (batched search ${result.searchSeconds.toFixed(1)} s; ${seconds.toFixed(1)} s with loading${flags.report ? ' and the report' : ''})`;
        if (flags.json) process.stderr.write(`${line}\n`);
        else print(line);
        if (!flags.json && !flags.perClass && !flags.report) print('per-class tables and confusion: --per-class, --report DIR or --json');
      });
    }));
}
