/**
 * `lookalike query`: catalog products that look like a photo, or match words.
 */
import { parseFilters } from '../../search/filters.js';
import { parseCrop } from '../../validate.js';
import { searchOptions } from '../options.js';
import { boxText, printResponse, searchFlags, type SearchFlags } from '../search.js';
import { action, badOption, print, withIndex, type Command } from '../shared.js';

export function registerQueryCommand(program: Command): void {
  searchOptions(program.command('query')
    .description('Find catalog products that look like a photo. The product is found in the photo by itself (its cells of the feature map, then a second look at its box); --crop searches only the box you give. When the top result stands out, the rest are searched with its vector added (more like the product found). With --text and no photo: products matching the words, best match first.')
    .argument('[image]', 'a photo (jpg, png, webp); leave it out to search by --text alone')
    .option('--crop <x,y,w,h>', 'search only this part of the photo, relative to it (each 0..1), e.g. 0.1,0.2,0.5,0.6')
    .option('--no-expand', "search with the photo's own vector only (no expansion by the top result)")
    .option('--all-regions', 'shop the look: also search each region found in the photo on its own (one list per region)')
    .addHelpText('after', '\nExamples:\n  lookalike query photo.jpg -k 5\n  lookalike query photo.jpg --crop 0.5,0,0.5,1     # the right half\n  lookalike query photo.jpg --filter gender=Women --threshold 0.6 --json\n  lookalike query photo.jpg --text leather          # a photo plus words\n  lookalike query outfit.jpg --all-regions          # every product in the photo\n  lookalike query --text "navy shirts"              # words alone'))
    .action(action(async (image: string | undefined, flags: SearchFlags & { crop?: string; expand: boolean; allRegions?: boolean }) => {
      if (!image && flags.text === undefined) badOption('give a photo, or words to search for with --text.');
      if (!image && (flags.crop !== undefined || flags.allRegions)) badOption('--crop and --all-regions need a photo.');
      // An empty --crop '' is a mistake to report, not a crop to ignore.
      const crop = flags.crop !== undefined ? parseCrop(flags.crop) : undefined;
      await withIndex(flags.index, async (lookalike) => {
        const columns = lookalike.manifest.catalog.columns;
        if (!image) {
          printResponse(await lookalike.searchText(flags.text!, { k: flags.k, filters: parseFilters(flags.filter, columns) }), flags, columns);
          return;
        }
        const response = await lookalike.searchByImage(image, { ...searchFlags(flags, columns), label: image, crop, expand: flags.expand, shopTheLook: flags.allRegions });
        for (const warning of response.query.warnings ?? []) process.stderr.write(`lookalike: warning: ${warning}\n`);
        printResponse(response, flags, columns);
        if (!flags.json && response.regions?.length && !flags.allRegions) print(`regions found (try --crop or --all-regions): ${response.regions.map(boxText).join('  ')}`);
      });
    }));
}
