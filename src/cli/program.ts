/**
 * The `lookalike` command line as a value: each command is registered from its own module
 * (commands/<command>.ts), all of them thin layers over the library; the lab's commands
 * load the lab (src/lab/) only when they run. main.ts runs it on process.argv;
 * tests run it in-process.
 */
import { Command } from 'commander';
import { registerIndexCommand } from './commands/index.js';
import { registerQueryCommand } from './commands/query.js';
import { registerSimilarCommand } from './commands/similar.js';
import { registerExportCommand } from './commands/export.js';
import { registerRecommendCommand } from './commands/recommend.js';
import { registerCopyCommand } from './commands/copy.js';
import { registerInfoCommand } from './commands/info.js';
import { registerWorkerCommand } from './commands/worker.js';
import { registerStatusCommand } from './commands/status.js';
import { registerBenchCommand } from './commands/bench.js';
import { registerServeCommand } from './commands/serve.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerBenchApiCommand } from './commands/bench-api.js';
import { registerEvalCommand } from './commands/eval.js';
import { registerAskingCommand } from './commands/asking.js';
import { registerMapCommand } from './commands/map.js';
import { registerTuneCommand } from './commands/tune.js';
import { registerTrainCommand } from './commands/train.js';
import { registerRobustnessCommand } from './commands/robustness.js';
import { registerTransferCommand } from './commands/transfer.js';
import { registerCacheCommand } from './commands/cache.js';
import { registerPrepareCommand } from './commands/prepare.js';
import { registerProductCommands } from './commands/products.js';
import { storeOption } from './options.js';
import {  } from './shared.js';

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

  // In the order --help lists them.
  for (const register of [
    registerIndexCommand, registerQueryCommand, registerSimilarCommand, registerExportCommand, registerRecommendCommand, registerCopyCommand, registerInfoCommand,
    registerWorkerCommand, registerStatusCommand, registerBenchCommand, registerServeCommand, registerDemoCommand, registerBenchApiCommand,
    registerEvalCommand, registerAskingCommand, registerMapCommand, registerTuneCommand, registerTrainCommand, registerRobustnessCommand, registerTransferCommand,
    registerCacheCommand, registerPrepareCommand, registerProductCommands,
  ]) register(program);
  // Every command that opens an index can open it in a shared store instead.
  for (const command of program.commands) {
    if (command.options.some((o) => o.long === '--index')) command.addOption(storeOption());
  }
  return program;
}
