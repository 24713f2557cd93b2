/**
 * `lookalike cache`: where the model cache is, what it holds, and `cache prune` to remove
 * what has not been used for a while (model/cache.ts).
 */
import { DEFAULT_PRUNE_DAYS, listCache, pruneCache, type CacheEntry } from '../../model/cache.js';
import { action, intArg, print, printJson, table, type Command } from '../shared.js';

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const day = (d: Date) => d.toISOString().slice(0, 10);

function rows(entries: CacheEntry[]): string[][] {
  return [['kind', 'size', 'last used', 'file'], ...entries.map((e) => [e.kind, mb(e.bytes), day(e.lastUsed), e.name])];
}

export function registerCacheCommand(program: Command): void {
  const cache = program.command('cache')
    .description('The model cache (converted and int8 models, calibrations, replicas\' ANN files): where it is and what it holds. Everything in it is rebuilt when needed. Location: $LOOKALIKE_CACHE, else $XDG_CACHE_HOME/lookalike, else ~/.cache/lookalike.')
    .option('--json', 'print JSON')
    .action(action(async (flags: { json?: boolean }) => {
      const listing = await listCache();
      if (flags.json) return printJson(listing);
      print(`cache: ${listing.dir}: ${listing.entries.length} entries, ${mb(listing.bytes)}`);
      if (listing.entries.length) print(table(rows(listing.entries)));
      if (listing.legacy) print(`an earlier version's cache is at ${listing.legacy.dir} (${mb(listing.legacy.bytes)}), no longer used: delete it by hand`);
      print(`remove what has not been used for ${DEFAULT_PRUNE_DAYS} days: lookalike cache prune`);
    }));

  cache.command('prune')
    .description(`Remove cache entries not used for --older-than days (default ${DEFAULT_PRUNE_DAYS}), and writes left unfinished by a process that died. A model removed while an index still needs it is rebuilt the next time (float32: ~15 s; int8: seconds).`)
    .option('--older-than <days>', `remove entries not used for this many days (default ${DEFAULT_PRUNE_DAYS})`, intArg('--older-than', 0))
    .option('--all', 'remove everything')
    .option('--dry-run', 'list what would be removed, remove nothing')
    .option('--json', 'print JSON')
    .action(action(async (flags: { olderThan?: number; all?: boolean; dryRun?: boolean; json?: boolean }) => {
      const report = await pruneCache({ olderThanDays: flags.olderThan, all: flags.all, dryRun: flags.dryRun });
      if (flags.json) return printJson(report);
      if (report.removed.length) print(table(rows(report.removed)));
      print(`cache: ${report.dir}: ${report.dryRun ? 'would remove' : 'removed'} ${report.removed.length} entries (${mb(report.removedBytes)}); kept ${report.kept} (${mb(report.keptBytes)})`);
    }));
}
