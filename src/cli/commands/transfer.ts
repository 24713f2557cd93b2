/**
 * `lookalike transfer`: does the index's head help on a catalog of another kind (the lab's
 * lab/eval/transfer.ts, loaded when it runs)?
 */
import { indexOption } from '../options.js';
import { action, intArg, print, printJson, progressBar, table, withIndex, type Command } from '../shared.js';

interface TransferFlags { index: string; items: number; size: number; colour?: boolean; attr?: string; k: number; json?: boolean }

export function registerTransferCommand(program: Command): void {
  program.command('transfer')
    .description("Check that the index's head helps on a catalog of another kind that it never saw: its held-out items become small greyscale thumbnails, indexed with the same settings, and leave-one-out kNN accuracy and precision@k of plain features and every head mode are compared (the head is not retrained; its inputs are re-centred on the thumbnails, as `index --head` does for any other catalog; the default mode as trained is shown too).")
    .addOption(indexOption())
    .option('--items <n>', "held-out items made into the other catalog", intArg('items', 10, 100_000), 2000)
    .option('--size <px>', 'side of the square greyscale thumbnails', intArg('size', 8, 512), 28)
    .option('--colour', 'keep the colour (a control: a catalog of the same kind, only reframed to a square)')
    .option('--attr <columns>', 'label columns to compare, comma-separated (default: the fashion labels the catalog has)')
    .option('--k <n>', 'neighbours per query', intArg('k', 1, 100), 5)
    .option('--json', 'print the result as JSON')
    .addHelpText('after', '\nExamples:\n  lookalike transfer --index ./index\n  lookalike transfer --items 500 --size 32 --attr articleType --json\n  lookalike transfer --colour --size 80        # control: the same kind of catalog')
    .action(action(async (flags: TransferFlags) => {
      const { evaluateTransfer } = await import('../../lab/eval/transfer.js');
      await withIndex(flags.index, async (lookalike) => {
        const bar = progressBar('thumbnails, then indexing them', 'items', flags.json ? false : undefined);
        let stage = '';
        const result = await evaluateTransfer(lookalike, {
          items: flags.items, size: flags.size, colour: flags.colour, k: flags.k, attributes: flags.attr?.split(',').map((a) => a.trim()).filter(Boolean),
          onProgress: (s, done, total) => { if (s !== stage) { if (stage) bar.stop(); stage = s; bar.start(total); } bar.update(done); },
        });
        bar.stop();
        if (flags.json) return printJson(result);
        print(`${result.items} held-out items as ${result.size}x${result.size} ${result.colour ? 'colour' : 'greyscale'} thumbnails, leave-one-out, k = ${result.k}; the head re-centred on them, and as trained`);
        const f3 = (v: number) => v.toFixed(3);
        print(table([['space', 'attribute', 'kNN accuracy', `precision@${result.k}`], ...result.rows.map((r) => [r.space, r.attribute, f3(r.knnAccuracy), f3(r.precisionAtK)])]));
        process.stderr.write(`done in ${result.seconds.toFixed(1)} s\n`);
      });
    }));
}
