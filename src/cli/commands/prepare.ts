/**
 * `lookalike prepare`: the model conversion (and, for an int8 index, its quantisation)
 * ahead of time, so that a new replica or worker answers at full speed from its first
 * request. The Dockerfile runs it at build time; an int8 index's model needs the index
 * (its calibration), so on each machine it runs once the index exists.
 */
import { Option } from 'commander';
import { prepareModel } from '../../lookalike.js';
import { BACKBONES, DEFAULT_BACKBONE } from '../../model/registry.js';
import { describeLocation } from '../../store/location.js';
import { envOption, indexOption } from '../options.js';
import { action, print, printJson, type Command } from '../shared.js';

export function registerPrepareCommand(program: Command): void {
  program.command('prepare')
    .description('Convert the model into the model cache ahead of time (and, with --index/--store, quantise it for that index\'s int8 calibration), so servers and workers start at full speed. Use it as a container build step.')
    .addOption(indexOption())
    .addOption(envOption('--backbone <name>', 'without an index: the backbone to convert', 'LOOKALIKE_BACKBONE').choices(Object.keys(BACKBONES)).default(DEFAULT_BACKBONE))
    .addOption(new Option('--json', 'print JSON'))
    .addHelpText('after', '\nExamples:\n  lookalike prepare                                   # the float32 model (any machine, any time)\n  lookalike prepare --store postgres://me@db/shop --index main   # the model that index embeds with')
    .action(action(async (flags: { index: string; store?: string; backbone: string; json?: boolean }, command: Command) => {
      // The index only when one was named: a bare `prepare` (a container build) has none.
      const named = flags.store !== undefined || command.getOptionValueSource('index') !== 'default';
      const report = await prepareModel({ location: named ? flags.index : undefined, backbone: flags.backbone, log: (m) => process.stderr.write(`${m}\n`) });
      if (flags.json) return printJson(report);
      print(`prepared ${report.backbone} (${report.precision}${report.calibration ? `, calibration ${report.calibration}` : ''}) for ${named ? describeLocation(flags.index) : 'any index'} in ${report.seconds.toFixed(1)} s: ${report.weightsId}`);
    }));
}
