/**
 * Three worker processes index the data suite's 1,000-item dev subset through Redis into
 * PostgreSQL (real servers, real CNN); one is killed with -9 about half way. The index must
 * end with exactly the embeddable items, none twice, every vector equal (max abs difference
 * <= 1e-5) to the same items indexed in one process into SQLite (devIndex()).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { HAS_DEV_CATALOG, DEV_CATALOG, devIndex, devSubsetIds } from './dev-index.js';
import { enqueueIndex } from '../../src/queue/enqueue.js';
import { KEY_PREFIX, parseQueueUrl } from '../../src/queue/connection.js';
import { runProgress } from '../../src/queue/run.js';
import { storeLocation } from '../../src/store/location.js';
import { openStore } from '../../src/store/open.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { VectorKind } from '../../src/store/types.js';
import { dropIndex, freshIndexName, PG_URL } from '../helpers/pg.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSX = pathToFileURL(path.join(ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
const REDIS = process.env.LOOKALIKE_TEST_REDIS ?? 'redis://127.0.0.1:6379';

describe.skipIf(!HAS_DEV_CATALOG)('three workers, one killed with -9', () => {
  const name = freshIndexName('queue');
  const location = storeLocation(PG_URL, name);
  // The queue is named after the index (queue/connection.ts), known once the run made it.
  let queueName = '';
  const redis = new Redis(parseQueueUrl(REDIS).options);
  let queue: Queue | undefined;
  const workers: ChildProcess[] = [];

  afterAll(async () => {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    await queue?.obliterate({ force: true }).catch(() => {});
    if (queueName) await redis.del(`${KEY_PREFIX}:${queueName}:lk:run`, `${KEY_PREFIX}:${queueName}:lk:counted`);
    await queue?.close();
    redis.disconnect();
    await dropIndex(PG_URL, name).catch(() => {});
  });

  it('ends with exactly the embeddable items, none twice, each vector as in one process', async () => {
    const referenceDir = await devIndex();
    const ids = new Set(devSubsetIds());
    const report = await enqueueIndex({ catalogDir: DEV_CATALOG, location, queue: REDIS, select: (id) => ids.has(id) });
    expect(report.queued).toBe(ids.size);
    queueName = report.queue;
    queue = new Queue(queueName, { connection: redis, prefix: KEY_PREFIX });

    for (let i = 0; i < 3; i++) {
      const child = spawn(process.execPath, ['--import', TSX, path.join(ROOT, 'src/cli/main.ts'), 'worker', '--store', PG_URL, '--index', name, '--queue', REDIS], {
        cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'],
      });
      // The worker logs on stdout (JSON lines), errors at start on stderr: both, for a failure's report.
      let log = '';
      child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
      child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
      child.on('exit', (code, signal) => { if (code) process.stderr.write(`worker ${i} exited ${code ?? signal}:\n${log}\n`); });
      workers.push(child);
    }

    // About half way: kill the first worker while it holds batches.
    let handoverSeconds: number | undefined;
    for (;;) {
      const p = (await runProgress(redis, queue!, queueName))!;
      if (p.done + p.failed >= ids.size / 2) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const activeBefore = (await queue!.getJobCounts('active')).active;
    workers[0].kill('SIGKILL');
    const killedAt = Date.now();
    // Each live worker holds at most 2 batches: once the dead one's are taken back, at most 4 remain active.
    for (;;) {
      const p = (await runProgress(redis, queue!, queueName))!;
      const { active } = await queue!.getJobCounts('active');
      if (handoverSeconds === undefined && active <= 4) handoverSeconds = (Date.now() - killedAt) / 1000;
      if (p.finished) {
        expect(p.done + p.failed).toBe(ids.size);
        break;
      }
      expect(Date.now() - killedAt).toBeLessThan(240_000);
      await new Promise((r) => setTimeout(r, 250));
    }
    process.stderr.write(`killed a worker at half way (${activeBefore} batches active); its batches were handed over within ${handoverSeconds?.toFixed(1)} s\n`);
    expect(handoverSeconds).toBeLessThan(30);

    const reference = SqliteStore.open(referenceDir, { readonly: true });
    const store = await openStore(location, { readonly: true });
    try {
      await store.preload?.(['max', 'avg', 'colour']);
      const expected = [...reference.embeddedIds()].filter((id) => ids.has(id)).sort();
      expect([...store.embeddedIds()].sort()).toEqual(expected);
      expect(store.count()).toEqual({ items: ids.size, embedded: expected.length, failed: ids.size - expected.length });
      for (const kind of ['max', 'avg', 'colour'] as VectorKind[]) {
        const ours = store.loadMatrix(kind), theirs = reference.loadMatrix(kind);
        expect(new Set(ours.ids).size).toBe(ours.ids.length); // none twice
        expect(ours.ids.length).toBe(expected.length);
        const row = new Map(theirs.ids.map((id, r) => [id, r]));
        let maxDiff = 0;
        ours.ids.forEach((id, r) => {
          const t = row.get(id)!;
          for (let j = 0; j < ours.dim; j++) maxDiff = Math.max(maxDiff, Math.abs(ours.data[r * ours.dim + j] - theirs.data[t * theirs.dim + j]));
        });
        expect(maxDiff, kind).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      reference.close();
      await store.close();
    }
  }, 900_000);
});
