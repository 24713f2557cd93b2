/**
 * The `lookalike` command line as a value: each concern registers its commands from its
 * own module, all of them thin layers over the library. main.ts runs it on process.argv;
 * tests run it in-process.
 */
import { Command } from 'commander';
import { registerCoreCommands } from './commands/core.js';
import { registerQueueCommands } from './commands/queue.js';
import { registerBenchCommand } from './commands/bench.js';
import { registerServeCommands } from './commands/serve.js';
import { registerEvalCommand } from './commands/eval.js';
import { registerAskingCommand } from './commands/asking.js';
import { registerMapCommand } from './commands/map.js';
import { registerTuneCommand } from './commands/tune.js';
import { registerTrainCommand } from './commands/train.js';
import { registerRobustnessCommand, registerTransferCommand } from './commands/robustness.js';
import { registerCacheCommand } from './commands/cache.js';
import { registerPrepareCommand } from './commands/prepare.js';
import { registerProductCommands } from './commands/products.js';
import { storeOption } from './shared.js';

export function createProgram(): Command {
  const program = new Command()
    .name('lookalike')
    .description('Visually similar fashion products: index a catalog of product photos with ResNet50 embeddings, then search it by photo or by item.')
    // Usage errors (an unknown option, -k 0) end like every other error: one line with its code.
    .configureOutput({
      outputError: (message, write) => write(`lookalike: ${message.replace(/^error: /, '').trim()} (run with --help for usage) [BAD_OPTION]\n`),
    })
    .addHelpText('after', `
Typical session:
  lookalike index ../shared/datasets/fashion-small     # embed the catalog into .lookalike/
  lookalike query photo.jpg -k 5                         # products that look like a photo
  lookalike similar 15970 -k 5                           # more like a catalog item
  lookalike export --embeddings emb.csv --metadata meta.csv
  lookalike recommend -k 5 --out recommendations.csv`);

  registerCoreCommands(program);
  registerQueueCommands(program);
  registerBenchCommand(program);
  registerServeCommands(program);
  registerEvalCommand(program);
  registerAskingCommand(program);
  registerMapCommand(program);
  registerTuneCommand(program);
  registerTrainCommand(program);
  registerRobustnessCommand(program);
  registerTransferCommand(program);
  registerCacheCommand(program);
  registerPrepareCommand(program);
  registerProductCommands(program);
  // Every command that opens an index can open it in a shared store instead.
  for (const command of program.commands) {
    if (command.options.some((o) => o.long === '--index')) command.addOption(storeOption());
  }
  return program;
}
