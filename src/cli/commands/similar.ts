/**
 * `lookalike similar`: more like a catalog item.
 */
import { searchOptions } from '../options.js';
import { printResponse, searchFlags, type SearchFlags } from '../search.js';
import { action, withIndex, type Command } from '../shared.js';

export function registerSimilarCommand(program: Command): void {
  searchOptions(program.command('similar')
    .description('More like this: products that look like a catalog item (the item itself is excluded).')
    .argument('<id>', 'catalog item id')
    .addHelpText('after', '\nExample:\n  lookalike similar 15970 -k 5'))
    .action(action(async (id: string, flags: SearchFlags) => {
      await withIndex(flags.index, async (lookalike) => {
        const response = await lookalike.searchById(id, searchFlags(flags, lookalike.manifest.catalog.columns));
        printResponse(response, flags, lookalike.manifest.catalog.columns);
      });
    }));
}
