/**
 * `lookalike copy`: an index into another store, without re-embedding.
 */
import { copyIndex } from '../../store/copy.js';
import { describeLocation, isStoreUrl, parseLocation } from '../../store/location.js';
import { action, intArg, print, type Command } from '../shared.js';

export function registerCopyCommand(program: Command): void {
  program.command('copy')
    .description('Copy an index to another store without re-embedding: a folder into PostgreSQL (or back). Resumable: rerun to finish.')
    .argument('<from>', 'index folder, or postgres://USER@HOST:PORT/DATABASE#NAME')
    .argument('<to>', 'index folder, or postgres://USER@HOST:PORT/DATABASE#NAME')
    .option('--first <n>', 'only the first n items (a sample, e.g. for a benchmark)', intArg('first'))
    .addHelpText('after', '\nExample:\n  lookalike copy .lookalike postgres://shop@db:5432/shop#main')
    .action(action(async (from: string, to: string, flags: { first?: number }) => {
      const r = await copyIndex(checkedLocation(from), checkedLocation(to), (m) => process.stderr.write(`${m}\n`), flags.first);
      print(`copied ${describeLocation(from)} -> ${describeLocation(to)}: ${r.items} items, ${r.copied} vectors written, ${r.removed} removed, in ${r.seconds.toFixed(1)} s`);
    }));
}

/** A copy end as given: a folder, or a PostgreSQL location checked before anything is opened. */
function checkedLocation(location: string): string {
  if (isStoreUrl(location)) parseLocation(location);
  return location;
}
