#!/usr/bin/env node
/* global performance, setTimeout */
/**
 * How long `lookalike serve` takes to start and how much memory it holds once started, and
 * what `import 'lookalike'` costs: the before/after figures of issue 22 (the lab and the
 * optional services loaded only when used).
 *
 *   node bin/lookalike.js index demo/catalog --index /tmp/idx
 *   node scripts/serve-start.mjs --index /tmp/idx [--runs 5] [--port 4200] [--root OTHER_CHECKOUT]
 *
 * Each run starts `node bin/lookalike.js serve` on SQLite and times, from the spawn:
 * the "Listening on" line, and the first 200 from /api/health/ready (model loaded too);
 * RSS (VmRSS) is read once ready, before any search. Medians over the runs. One more
 * run under scripts/record-loads.mjs lists the heavy packages loaded by then (not timed:
 * the hook slows loading). Then the same for `await import('lookalike')` (dist/index.js).
 * Needs a build (npm run build). Prints the CPU and the load average: timings taken
 * while others use the machine say so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const RECORDER = path.join(import.meta.dirname, 'record-loads.mjs');
/** Packages `import 'lookalike'` and `serve` on SQLite should not need before the first query. */
const HEAVY = ['pg', 'pg-copy-streams', 'bullmq', 'ioredis', 'vega', 'vega-lite', '@resvg/resvg-js', 'usearch', 'onnxruntime-node', 'sharp', 'better-sqlite3'];

const { values } = parseArgs({
  options: {
    index: { type: 'string' },
    runs: { type: 'string', default: '5' },
    port: { type: 'string', default: '4200' },
    root: { type: 'string' },
  },
});
/** The checkout measured (built): this one, or --root (another worktree, e.g. main's for the before figure). */
const ROOT = path.resolve(values.root ?? path.join(import.meta.dirname, '..'));
const CLI = path.join(ROOT, 'bin/lookalike.js');
if (!values.index) {
  console.error('usage: node scripts/serve-start.mjs --index DIR [--runs N] [--port P] [--root CHECKOUT]');
  process.exit(2);
}
const runs = Number(values.runs);
const port = Number(values.port);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The package a node_modules path or file URL belongs to ("@resvg/resvg-js", "pg"). */
function packageOf(entry) {
  const tail = entry.split('node_modules/').pop();
  if (tail === entry) return undefined;
  const [scope, name] = tail.split('/');
  return scope.startsWith('@') ? `${scope}/${name}` : scope;
}

export function packagesLoaded(file) {
  if (!existsSync(file)) return new Set();
  return new Set(readFileSync(file, 'utf8').split('\n').map(packageOf).filter(Boolean));
}

/** One `serve`: seconds to the listening line and to ready, RSS once ready. */
async function serveOnce(p, recordTo) {
  const started = performance.now();
  const env = { ...process.env, LOOKALIKE_LOG_FORMAT: 'json' };
  const args = [CLI, 'serve', '--index', values.index, '--port', String(p), '--host', '127.0.0.1'];
  if (recordTo) {
    env.LOOKALIKE_RECORD_LOADS = recordTo;
    args.unshift('--import', RECORDER);
  }
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let listening;
  child.stdout.on('data', (d) => {
    out += d;
    if (listening === undefined && out.includes('"Listening on')) listening = (performance.now() - started) / 1000;
  });
  child.stderr.on('data', (d) => { out += d; });
  const exited = new Promise((r) => child.on('exit', r));
  let ready;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline && child.exitCode === null;) {
    const ok = await fetch(`http://127.0.0.1:${p}/api/health/ready`).then((r) => r.ok, () => false);
    if (ok) { ready = (performance.now() - started) / 1000; break; }
    await sleep(10);
  }
  if (ready === undefined) {
    child.kill('SIGKILL');
    throw new Error(`serve did not become ready:\n${out}`);
  }
  const rss = rssMiB(child.pid);
  // The answer can overtake the line on its way through the pipe.
  for (let i = 0; listening === undefined && i < 200; i++) await sleep(5);
  if (recordTo) {
    child.kill('SIGUSR2');
    await sleep(300);
  }
  child.kill('SIGINT');
  await exited;
  return { listening, ready, rss };
}

/** One `await import('lookalike')` in a fresh process: ms for the import, process wall ms. */
function importOnce(recordTo) {
  const code = `const t = performance.now(); await import(${JSON.stringify(path.join(ROOT, 'dist/index.js'))}); console.log(performance.now() - t);`;
  const args = ['--input-type=module', '-e', code];
  const env = { ...process.env };
  if (recordTo) {
    env.LOOKALIKE_RECORD_LOADS = recordTo;
    args.unshift('--import', RECORDER);
  }
  const started = performance.now();
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return { importMs: Number(r.stdout.trim()), wallMs: performance.now() - started, rss: undefined };
}

const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model;
const git = spawnSync('git', ['-C', ROOT, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).stdout.trim();
const loadBefore = os.loadavg();
console.log(`checkout: ${git}`);
console.log(`cpu: ${cpu} x ${os.cpus().length}; node ${process.version}; load average before: ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);

const serves = [];
for (let i = 0; i < runs; i++) serves.push(await serveOnce(port + (i % 50)));
const recordFile = path.join(os.tmpdir(), `serve-start-loads-${process.pid}.txt`);
rmSync(recordFile, { force: true });
await serveOnce(port + 50, recordFile);
const serveLoaded = packagesLoaded(recordFile);
rmSync(recordFile, { force: true });

const imports = [];
for (let i = 0; i < runs; i++) imports.push(importOnce());
importOnce(recordFile);
const importLoaded = packagesLoaded(recordFile);
rmSync(recordFile, { force: true });

const loadAfter = os.loadavg();
const fmt = (xs, digits) => `${median(xs).toFixed(digits)} (runs: ${xs.map((x) => x.toFixed(digits)).join(' ')})`;
console.log(`\nlookalike serve --index ${values.index} (SQLite), ${runs} runs, medians:`);
console.log(`  to "Listening on" line      ${fmt(serves.map((s) => s.listening), 2)} s`);
console.log(`  to /api/health/ready = 200  ${fmt(serves.map((s) => s.ready), 2)} s`);
console.log(`  RSS once ready              ${fmt(serves.map((s) => s.rss), 0)} MiB`);
console.log(`  heavy packages loaded once ready: ${HEAVY.filter((p) => serveLoaded.has(p)).join(', ') || 'none'}`);
console.log(`  not loaded: ${HEAVY.filter((p) => !serveLoaded.has(p)).join(', ') || 'none'}`);
console.log(`  packages loaded in all: ${serveLoaded.size}`);
console.log(`\nawait import('lookalike') (dist/index.js) in a fresh node, ${runs} runs, medians:`);
console.log(`  the import                  ${fmt(imports.map((s) => s.importMs), 0)} ms`);
console.log(`  whole process               ${fmt(imports.map((s) => s.wallMs), 0)} ms`);
console.log(`  heavy packages loaded: ${HEAVY.filter((p) => importLoaded.has(p)).join(', ') || 'none'}`);
console.log(`  not loaded: ${HEAVY.filter((p) => !importLoaded.has(p)).join(', ') || 'none'}`);
console.log(`  packages loaded in all: ${importLoaded.size}`);
console.log(`\nload average after: ${loadAfter.map((l) => l.toFixed(2)).join(' ')}${Math.max(loadBefore[0], loadAfter[0]) > 0.5 ? ' (the machine was under load from other work: compare runs taken together only)' : ''}`);
