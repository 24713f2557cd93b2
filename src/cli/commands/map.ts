/**
 * `lookalike map`: a 2-D t-SNE map of the index's embedding space, stored as
 * <index>/map.json (served to the web page) and drawn as PNG and SVG.
 */
import type { MapPhase } from '../../lab/viz/map.js';
import path from 'node:path';
import type { Pooling } from '../../model/registry.js';
import { indexOption, modeOption, poolingOption } from '../options.js';
import { action, badOption, floatArg, intArg, print, progressBar, withIndex, type Command } from '../shared.js';

interface MapFlags {
  index: string; color?: string; out?: string; perplexity: number; iterations: number; sample?: number;
  pooling?: Pooling; mode?: string; seed: number; json?: boolean;
}

const PHASE_LABEL: Record<MapPhase, string> = {
  load: 'loading vectors', pca: 'PCA', neighbours: 't-SNE neighbours', affinities: 't-SNE affinities', optimise: 't-SNE optimise',
};
const PHASE_UNIT: Record<MapPhase, string> = { load: 'steps', pca: 'steps', neighbours: 'rows', affinities: 'rows', optimise: 'iter' };

export function registerMapCommand(program: Command): void {
  program.command('map')
    .description('Draw a 2-D map of the catalog (PCA to 50 dimensions, then Barnes-Hut t-SNE): similar-looking products land close together. Writes <index>/map.json for the web page, and PNG/SVG pictures.')
    .addOption(indexOption())
    .option('--color <column>', 'attribute that colours the points (default: articleType when present)')
    .option('--out <dir>', 'folder for map-<attribute>.png/.svg (default: <index>/report)')
    .option('--perplexity <p>', 't-SNE perplexity (effective neighbours per point)', floatArg('perplexity', 2, 200), 30)
    .option('--iterations <n>', 't-SNE iterations', intArg('iterations', 50, 10_000), 1000)
    .option('--sample <n>', 'map only n items drawn at random', intArg('sample', 10))
    .option('--seed <n>', 'random seed (same seed, same map)', intArg('seed', 0), 0)
    .addOption(poolingOption())
    .addOption(modeOption('notion of similarity when the index has a trained head'))
    .option('--json', 'print timings and file names as JSON')
    .addHelpText('after', '\nExamples:\n  lookalike map\n  lookalike map --color baseColour --out maps\n  lookalike map --sample 5000 --iterations 750')
    .action(action(async (flags: MapFlags) => {
      const { computeMap, mapData, writeMapFile } = await import('../../lab/viz/map.js');
      const { mapChart, writeChart } = await import('../../lab/viz/charts.js');
      const { resolveAttributes } = await import('../../lab/eval/evaluate-index.js');
      await withIndex(flags.index, async (lookalike) => {
        const columns = lookalike.manifest.catalog.columns;
        let attribute: string | undefined;
        if (flags.color) {
          if (!columns.includes(flags.color)) badOption(`unknown attribute "${flags.color}" for --color. Columns in this catalog: ${columns.join(', ')}.`);
          attribute = flags.color;
        } else if (columns.length) {
          attribute = resolveAttributes(columns)[0];
        }
        let current: MapPhase | undefined;
        let bar = progressBar('', '', false);
        let phaseStarted = performance.now();
        const result = await computeMap(lookalike, {
          attribute, perplexity: flags.perplexity, iterations: flags.iterations, sample: flags.sample,
          pooling: flags.pooling, mode: flags.mode, seed: flags.seed,
          onProgress: (phase, done, total) => {
            if (phase !== current) {
              bar.stop();
              current = phase;
              phaseStarted = performance.now();
              bar = progressBar(PHASE_LABEL[phase].padEnd(17), PHASE_UNIT[phase], process.stderr.isTTY === true && !flags.json);
              bar.start(total);
            }
            const elapsed = (performance.now() - phaseStarted) / 1000;
            bar.update(done, elapsed > 0 ? done / elapsed : undefined);
          },
        });
        bar.stop();
        const mapFile = await writeMapFile(lookalike, result.map);
        // Pictures go beside a folder index; for a shared store, into ./report here.
        const outDir = flags.out ?? path.join(lookalike.folder ?? '.', 'report');
        const drawStart = performance.now();
        const data = mapData(lookalike, result.map, attribute);
        const chart = await writeChart(outDir, mapChart(`map-${attribute ?? 'items'}`, `t-SNE map of ${data.points.length} items${attribute ? `, coloured by ${attribute}` : ''}`, data.points, data.values, attribute));
        const drawSeconds = (performance.now() - drawStart) / 1000;
        const t = result.timings;
        if (flags.json) {
          print(JSON.stringify({ map: mapFile, png: chart.pngFile, svg: chart.svgFile, points: result.map.points.length, timings: { ...t, draw: drawSeconds } }, null, 2));
          return;
        }
        print(`mapped ${result.map.points.length} items (${result.map.space}, perplexity ${flags.perplexity}, ${flags.iterations} iterations) in ${t.total.toFixed(1)} s:`);
        print(`  load ${t.load.toFixed(1)} s, PCA to ${result.map.pcaDimensions} ${t.pca.toFixed(1)} s, t-SNE neighbours ${t.neighbours.toFixed(1)} s, affinities ${t.affinities.toFixed(1)} s, optimisation ${t.optimise.toFixed(1)} s; drawing ${drawSeconds.toFixed(1)} s`);
        print(`map:     ${mapFile} (served by the web page at /api/map)`);
        print(`picture: ${chart.pngFile}`);
        print(`         ${chart.svgFile}`);
      });
    }));
}
