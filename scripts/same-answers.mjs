#!/usr/bin/env node
/**
 * The same answers before and after a change that should not change behaviour (a refactor):
 * a fixed set of CLI and HTTP API queries over the demo catalog, run black-box against one
 * checkout's built CLI (`bin/lookalike.js`, so run `npm run build` there first), each answer
 * written to its own file with run-dependent fields (timings, times, paths) blanked out.
 *
 *   node scripts/same-answers.mjs <checkout> <out-dir>
 *   scripts/same-answers.sh <git-ref>          # the ref against this checkout, then diff -r
 *
 * Black-box on purpose: it uses only what a user types or requests, so it keeps working
 * while the code behind the door is reshaped.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const [checkoutArg, outArg] = process.argv.slice(2);
if (!checkoutArg || !outArg) {
  console.error('usage: node scripts/same-answers.mjs <checkout> <out-dir>');
  process.exit(2);
}
const checkout = path.resolve(checkoutArg);
const out = path.resolve(outArg);
// The catalog is this script's own (both checkouts answer over the same photos).
const catalog = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'demo', 'catalog');
const cli = path.join(checkout, 'bin', 'lookalike.js');
const work = mkdtempSync(path.join(tmpdir(), 'lookalike-answers-'));
const index = path.join(work, 'index');
mkdirSync(out, { recursive: true });

/** Fields that differ from run to run, whatever the code: blanked in JSON answers. */
const VOLATILE = new Set(['tookMs', 'took', 'elapsedMs', 'seconds', 'createdAt', 'updatedAt', 'builtAt', 'indexedAt', 'time', 'uptime', 'uptimeS', 'imagesPerSecond', 'path', 'dir', 'index', 'root', 'lastWriteAt', 'ageSeconds', 'load', 'machine', 'cpu']);
const scrub = (value) => {
  if (Array.isArray(value)) return value.map(scrub);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, VOLATILE.has(k) || /(Ms|Seconds|PerSecond)$/.test(k) ? '<volatile>' : scrub(v)]));
  return typeof value === 'string' ? value.split(work).join('<work>') : value;
};
const normalise = (text) => {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try { return `${JSON.stringify(scrub(JSON.parse(trimmed)), null, 1)}\n`; } catch { /* not JSON after all */ }
  }
  return text.split(work).join('<work>')
    .replace(/\b\d+(\.\d+)? ?(ms|s)\b/g, '<time>')
    .replace(/[\d.,]+ ([a-z]+)\/s\b/g, '<rate> $1/s')
    .replace(/ETA \S+/g, 'ETA <time>');
};

const env = { ...process.env, NO_COLOR: '1', LOOKALIKE_LOG_FORMAT: 'json' };
let n = 0;
const save = (name, text) => writeFileSync(path.join(out, `${String(++n).padStart(2, '0')}-${name}.txt`), text);

function run(name, args, { keep = true } = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: work, env, encoding: 'utf8', timeout: 600_000 });
  if (keep) save(name, `exit ${r.status}\n--- stdout\n${normalise(r.stdout)}--- stderr\n${normalise(r.stderr)}`);
  if (r.status !== 0 && !keep) throw new Error(`${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r;
}

const photo = (id) => path.join(catalog, 'images', `${id}.jpg`);
const ids = readFileSync(path.join(catalog, 'styles.csv'), 'utf8').split('\n').slice(1).filter(Boolean).map((l) => l.split(',')[0]);
const [a, b, c, d] = [ids[0], ids[7], ids[42], ids[123]];

run('index', ['index', catalog, '--index', index, '--json'], { keep: false });

// The CLI.
run('similar', ['similar', a, '--index', index, '-k', '10', '--json']);
run('similar-table', ['similar', b, '--index', index, '-k', '7']);
run('similar-filter', ['similar', c, '--index', index, '-k', '10', '-f', 'gender=Women', '--json']);
run('similar-threshold', ['similar', d, '--index', index, '-k', '50', '-t', '0.6', '--json']);
run('similar-avg', ['similar', a, '--index', index, '--pooling', 'avg', '--json']);
run('similar-group', ['similar', b, '--index', index, '-k', '10', '--group', 'articleType', '--json']);
run('similar-dedupe', ['similar', c, '--index', index, '-k', '10', '--dedupe', '--json']);
run('similar-ann', ['similar', d, '--index', index, '-k', '10', '--search', 'ann', '--json']);
run('query-photo', ['query', photo(c), '--index', index, '-k', '10', '--json']);
run('query-photo-table', ['query', photo(d), '--index', index]);
run('query-no-expand', ['query', photo(a), '--index', index, '--no-expand', '--json']);
run('query-crop', ['query', photo(b), '--index', index, '--crop', '0.1,0.1,0.8,0.7', '--json']);
run('query-look', ['query', photo(a), '--index', index, '--all-regions', '--json']);
run('query-text', ['query', '--text', 'blue shirt', '--index', index, '--json']);
run('query-photo-text', ['query', photo(b), '--text', 'women', '--text-mode', 'filter', '--index', index, '--json']);
run('recommend-like', ['recommend', '--like', `${a},${b}`, '--unlike', c, '--index', index, '-k', '8', '--json']);
run('recommend-all', ['recommend', '--index', index, '-k', '3', '-o', '-']);
run('export-metadata', ['export', '--index', index, '--metadata', '-']);
run('info', ['info', '--index', index, '--json']);
run('duplicates', ['duplicates', '--index', index, '--threshold', '0.9', '--json']);
run('eval', ['eval', '--index', index, '-k', '5', '--json']);
run('errors-unknown-id', ['similar', 'no-such-id', '--index', index]);
run('errors-bad-k', ['similar', a, '--index', index, '-k', '0']);

// The HTTP API, over `lookalike serve` on a free port.
const server = spawn(process.execPath, [cli, 'serve', '--index', index, '--port', '0', '--log-format', 'json'], { cwd: work, env });
const base = await new Promise((resolve, reject) => {
  let seen = '';
  const onData = (chunk) => {
    seen += chunk;
    const m = seen.match(/http:\/\/(?:127\.0\.0\.1|localhost|\[::1?\]|0\.0\.0\.0):(\d+)/);
    if (m) resolve(`http://127.0.0.1:${m[1]}`);
  };
  server.stdout.on('data', onData);
  server.stderr.on('data', onData);
  server.on('exit', (code) => reject(new Error(`serve exited ${code}: ${seen}`)));
});
async function api(name, urlPath, init) {
  const r = await fetch(base + urlPath, init);
  save(name, `${r.status} ${r.headers.get('content-type')}\n${normalise(await r.text())}`);
}
const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const upload = (fields) => {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return { method: 'POST', body: form };
};
const file = (id) => new Blob([readFileSync(photo(id))], { type: 'image/jpeg' });
try {
  await api('api-items', '/api/items?limit=20&offset=10');
  await api('api-items-filter', '/api/items?limit=20&filter=gender%3DMen');
  await api('api-item', `/api/items/${a}`);
  await api('api-similar', `/api/items/${b}/similar?k=10`);
  await api('api-similar-group', `/api/items/${b}/similar?k=10&group=articleType`);
  await api('api-facets', '/api/facets');
  await api('api-map', '/api/map');
  await api('api-search-id', '/api/search', json({ id: c, k: 10 }));
  await api('api-search-id-avg', '/api/search', json({ id: c, k: 10, pooling: 'avg', dedupe: true }));
  await api('api-search-text', '/api/search', json({ text: 'black watch', k: 10 }));
  await api('api-search-photo', '/api/search', upload({ image: file(d), k: '10' }));
  await api('api-search-photo-crop', '/api/search', upload({ image: file(a), k: '10', crop: '0.2,0.1,0.6,0.8', expand: 'false' }));
  await api('api-search-look', '/api/search', upload({ image: file(b), shop_the_look: 'true' }));
  await api('api-recommend', '/api/recommend', json({ like: [a, b], unlike: [d], k: 10 }));
  await api('api-recommend-photo', '/api/recommend', upload({ like_image: file(c), k: '5' }));
  await api('api-error-k', '/api/search', json({ id: a, k: 100000 }));
  await api('api-error-id', '/api/items/no-such-id');
  await api('api-error-body', '/api/search', json({ nothing: true }));
} finally {
  server.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
console.log(`${n} answers in ${out}`);
