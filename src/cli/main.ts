/** The `lookalike` command line (see program.ts). */
import { createProgram } from './program.js';

await createProgram().parseAsync(process.argv);
