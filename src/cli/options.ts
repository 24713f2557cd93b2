/**
 * The options of the `lookalike` commands, each declared once: the ones many commands
 * share (--index, --store, --pooling, --mode, the search options), and the builders
 * (envOption) the rest are made with. Commands that mean something else by a flag
 * (`tune --pooling` takes a list) declare their own.
 */
import { Option } from 'commander';
import { DEFAULT_K, ENV, SEARCH_MODES, DEFAULT_STORE_INDEX } from '../defaults.js';
import { POOLINGS } from '../model/registry.js';
import { ANN_MIN_ITEMS } from '../search/engine.js';
import { TEXT_MODES } from '../search/text.js';
import { MAX_K } from '../validate.js';
import { defaultIndexDir } from '../paths.js';
import { collect, floatArg, intArg, type Command } from './shared.js';

export function indexOption(): Option {
  return new Option('--index <dir>', 'index folder; with --store, the index\'s name in the database').default(defaultIndexDir(), '.lookalike/ under the current directory').env(ENV.index);
}

/** `--store URL`: a shared PostgreSQL store instead of a folder; every command with --index has it. */
export function storeOption(): Option {
  return new Option('--store <url>', `PostgreSQL store, postgres://USER@HOST:5432/DATABASE; --index then names the index in it (default "${DEFAULT_STORE_INDEX}")`)
    .env(ENV.store);
}

/**
 * An option that may also come from the environment variable `env` (`--help` shows both;
 * the flag wins). The value goes through the same parser and checks as the flag's.
 */
export function envOption(flags: string, description: string, env: string): Option {
  return new Option(flags, description).env(env);
}

/** `--catalog-root DIR` (serve, worker): this machine's copy of the catalog (catalog/relocate.ts). */
export function catalogRootOption(): Option {
  return envOption('--catalog-root <dir>', 'where this machine has the catalog, when not at the path it was indexed from: images are read at the same path under this folder (a file share mounted elsewhere)', 'LOOKALIKE_CATALOG_ROOT');
}

/**
 * `--allow-host NAMES` (repeatable, comma-separated; default $LOOKALIKE_ALLOW_HOSTS): hosts a
 * URL catalog may fetch from although they are on this machine or a private network.
 */
export function allowHostOption(): Option {
  return new Option('--allow-host <hosts>', `for URL catalogs: hosts fetched although they are on this machine or a private network (your own image server), comma-separated host names or addresses; other private, loopback and link-local addresses are refused`)
    .env(ENV.allowHosts)
    .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
}

export function queueOption(): Option {
  return envOption('--queue <url>', 'Redis for the job queue, redis://HOST:6379[/DB]', ENV.queue);
}

/** `--pooling max|avg`: which stored backbone vectors to use. */
export function poolingOption(description = 'pooling of the backbone features (default: the index\'s)'): Option {
  return new Option('--pooling <kind>', description).choices([...POOLINGS]);
}

/** `--mode MODE`: the head's notion of similarity. */
export function modeOption(description = `notion of similarity when the index has a trained head: ${SEARCH_MODES.join(', ')}`): Option {
  return new Option('--mode <mode>', description);
}

/** The options of the commands that search (query, similar, recommend). */
export function searchOptions(cmd: Command): Command {
  return cmd
    .addOption(indexOption())
    .option('-k, --k <n>', `number of similar products to return (default: ${DEFAULT_K}, or the value \`lookalike tune --apply\` chose)`, intArg('k', 1, MAX_K))
    .option('-t, --threshold <cosine>', 'minimum cosine similarity (-1..1); fewer results is fine', floatArg('threshold', -1, 1))
    .option('-f, --filter <field=value>', 'keep only products whose field matches (repeatable; a,b = either)', collect, [])
    .addOption(poolingOption())
    .addOption(modeOption())
    .option('--dedupe', 'hide near-duplicates of a better-ranked product (near-identical photos; `lookalike duplicates` lists them)')
    .option('--group <style|column>', 'one result per style (the catalog\'s style_id, parent or item_group_id column; its other variants are listed beside it), or per value of a catalog column')
    .addOption(new Option('--search <method>', `exact (score every item), ann (approximate index, re-ranked exactly) or db (PostgreSQL + pgvector answers: --store only, backbone max pooling); default: the index's setting, else ann from ${ANN_MIN_ITEMS.toLocaleString('en-US')} items`).choices(['exact', 'ann', 'db']))
    .option('--text <words>', 'words matched against product names and attributes (full-text, stemmed, typos corrected), e.g. "navy polo"')
    .addOption(new Option('--text-mode <mode>', 'filter: only products matching every word (default); boost: matching products rank higher').choices([...TEXT_MODES]))
    .option('--json', 'print machine-readable JSON');
}
