import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * What `import 'lookalike'` and the `lookalike` command line load before any command
 * runs: the optional services (PostgreSQL, Redis and its job queue) and the lab's charting
 * libraries are loaded only by the code that uses them (store/open.ts, cli/queued.ts, the
 * lab's commands), so a library user and `lookalike serve` on SQLite never pay for them.
 * Each check imports the sources in a fresh node (through tsx, no build needed) under
 * scripts/record-loads.mjs, which records every package loaded: ESM imports through a
 * resolve hook, CommonJS ones from require.cache.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
const OPTIONAL = ['pg', 'pg-copy-streams', 'bullmq', 'ioredis', 'vega', 'vega-lite', '@resvg/resvg-js'];

function packagesLoadedBy(code: string): Set<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lookalike-loads-'));
  const file = path.join(dir, 'loads.txt');
  try {
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--import', './scripts/record-loads.mjs', '--input-type=module', '-e', code], {
      cwd: ROOT, encoding: 'utf8', env: { ...process.env, LOOKALIKE_RECORD_LOADS: file },
    });
    expect(run.status, run.stderr).toBe(0);
    const packages = readFileSync(file, 'utf8').split('\n').map((entry) => {
      const tail = entry.split('node_modules/').pop()!;
      if (tail === entry) return undefined;
      const [scope, name] = tail.split('/');
      return scope.startsWith('@') ? `${scope}/${name}` : scope;
    });
    return new Set(packages.filter((p): p is string => p !== undefined));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const src = (file: string) => JSON.stringify(pathToFileURL(path.join(ROOT, 'src', file)).href);

describe('lazy loading of the optional services and the lab', () => {
  it("import 'lookalike' loads neither PostgreSQL, Redis, BullMQ nor the charting libraries", () => {
    const loaded = packagesLoadedBy(`await import(${src('index.ts')});`);
    expect(loaded.has('better-sqlite3'), 'the recorder sees the packages that are loaded').toBe(true);
    expect(OPTIONAL.filter((p) => loaded.has(p))).toEqual([]);
  }, 60_000);

  it('the command line (every command registered, serve included) loads none of them either', () => {
    const loaded = packagesLoadedBy(`const { createProgram } = await import(${src('cli/program.ts')}); createProgram();`);
    expect(loaded.has('commander')).toBe(true);
    expect(loaded.has('fastify'), 'serve is registered: its server module is loaded').toBe(true);
    expect(OPTIONAL.filter((p) => loaded.has(p))).toEqual([]);
  }, 60_000);

  it('the recorder does see them when they are imported (the check can fail)', () => {
    const loaded = packagesLoadedBy(`await import(${src('store/postgres.ts')}); await import(${src('lab/viz/charts.ts')});`);
    expect(['pg', 'pg-copy-streams', 'vega', '@resvg/resvg-js'].filter((p) => !loaded.has(p))).toEqual([]);
  }, 60_000);
});
