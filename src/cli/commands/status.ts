/** `lookalike status`: the progress of the last queued indexing run (../queued.ts). */
import { indexOption, queueOption } from '../options.js';
import type { StatusFlags } from '../queued.js';
import { action, type Command } from '../shared.js';

export function registerStatusCommand(program: Command): void {
  program.command('status')
    .description('Progress of the last queued indexing run of an index (`lookalike index --queue`): items done, failed, images/s, ETA, workers.')
    .addOption(indexOption())
    .addOption(queueOption())
    .option('--json', 'print JSON')
    .action(action(async (flags: StatusFlags) => (await import('../queued.js')).showStatus(flags)));
}
