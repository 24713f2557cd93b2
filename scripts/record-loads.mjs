/**
 * Preload (`node --import ./scripts/record-loads.mjs …`) that records which packages of
 * node_modules a process loads, for scripts/serve-start.mjs and the lazy-loading test.
 * ESM imports are seen by a resolve hook (it runs on the loader's own thread, so it
 * appends to a file); CommonJS requires, including those made inside CommonJS packages
 * that no hook sees, are read from require.cache when the file is asked for. Set
 * LOOKALIKE_RECORD_LOADS to the file; `packagesLoaded(file)` reads it back.
 */
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env.LOOKALIKE_RECORD_LOADS;
if (file) {
  register('./record-loads-hooks.mjs', import.meta.url, { data: { file } });
  const require = createRequire(import.meta.url);
  const dump = () => appendFileSync(file, Object.keys(require.cache).map((k) => `${k}\n`).join(''));
  process.on('exit', dump);
  // A server that is killed never reaches 'exit': SIGUSR2 asks for the list now.
  process.on('SIGUSR2', dump);
}
