/**
 * One queued indexing run, as `index`, every worker and `status` see it: a Redis hash
 * beside the BullMQ queue with the run's size and counters. Workers count a batch once,
 * however often it is delivered (a set of counted job ids, checked in the same Lua call),
 * so the progress bar over all workers never runs past 100% when a killed worker's batch is
 * done again by another.
 */
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import { KEY_PREFIX } from './connection.js';

/** What each queued job carries. */
export interface BatchJob {
  run: string;
  /** The index's weights and preprocessing when the run was queued: a worker with others refuses. */
  weightsId: string;
  fingerprint: string;
  items: Array<{ id: string; image: string }>;
  /** The catalog's folder on the indexing machine: a worker with its own `catalogRoot` reads images under that instead. */
  root?: string;
}

export interface RunState {
  id: string;
  index: string;
  catalog: string;
  total: number;
  done: number;
  failed: number;
  jobs: number;
  createdAt: string;
  /** ms since the epoch: first batch taken by a worker, last batch written. */
  startedAt?: number;
  lastAt?: number;
}

export interface RunProgress extends RunState {
  /** Batches waiting, being worked on, waiting for a retry. */
  waiting: number;
  active: number;
  delayed: number;
  workers: number;
  finished: boolean;
  /** Items per second since the first batch was taken. */
  rate: number;
  etaSeconds?: number;
}

const keys = (queue: string) => ({ run: `${KEY_PREFIX}:${queue}:lk:run`, counted: `${KEY_PREFIX}:${queue}:lk:counted` });

export async function startRun(redis: Redis, queue: string, run: Omit<RunState, 'done' | 'failed'>): Promise<void> {
  const k = keys(queue);
  await redis.multi()
    .del(k.run, k.counted)
    .hset(k.run, { id: run.id, index: run.index, catalog: run.catalog, total: run.total, jobs: run.jobs, createdAt: run.createdAt, done: 0, failed: 0 })
    .exec();
}

export async function readRun(redis: Redis, queue: string): Promise<RunState | undefined> {
  const h = await redis.hgetall(keys(queue).run);
  if (!h.id) return undefined;
  return {
    id: h.id, index: h.index, catalog: h.catalog, createdAt: h.createdAt,
    total: Number(h.total), done: Number(h.done), failed: Number(h.failed), jobs: Number(h.jobs),
    ...(h.startedAt && { startedAt: Number(h.startedAt) }),
    ...(h.lastAt && { lastAt: Number(h.lastAt) }),
  };
}

/** A worker took a batch: the run's clock starts at the first one. */
export async function markStarted(redis: Redis, queue: string, run: string): Promise<void> {
  const k = keys(queue);
  await redis.eval(`if redis.call('HGET', KEYS[1], 'id') == ARGV[1] then redis.call('HSETNX', KEYS[1], 'startedAt', ARGV[2]) end return 0`, 1, k.run, run, String(Date.now()));
}

/** A batch is written to the store: counted once per job id, for the run it belongs to. */
export async function countBatch(redis: Redis, queue: string, run: string, jobId: string, embedded: number, failed: number): Promise<boolean> {
  const k = keys(queue);
  const counted = await redis.eval(`
    if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
    if redis.call('SADD', KEYS[2], ARGV[2]) == 0 then return 0 end
    redis.call('HINCRBY', KEYS[1], 'done', ARGV[3])
    redis.call('HINCRBY', KEYS[1], 'failed', ARGV[4])
    redis.call('HSET', KEYS[1], 'lastAt', ARGV[5])
    return 1`, 2, k.run, k.counted, run, jobId, String(embedded), String(failed), String(Date.now()));
  return counted === 1;
}

/**
 * The run and its queue together. A run is finished when every item is counted, or when no
 * batch is left in the queue (a Redis that lost its data must not block the next run).
 */
export async function runProgress(redis: Redis, queue: Queue, name: string): Promise<RunProgress | undefined> {
  // The job counts first, then the run's counters: a worker counts a batch before its job
  // completes, so once the counts show no job left, the counters read after them are final.
  // (Read the other way round, a batch finishing in between looked like a run finished short.)
  const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
  const run = await readRun(redis, name);
  if (!run) return undefined;
  const workers = (await queue.getWorkers().catch(() => [])).length;
  const waiting = (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts['waiting-children'] ?? 0);
  const active = counts.active ?? 0, delayed = counts.delayed ?? 0;
  const processed = run.done + run.failed;
  const finished = processed >= run.total || waiting + active + delayed === 0;
  const elapsed = run.startedAt ? ((finished && run.lastAt ? run.lastAt : Date.now()) - run.startedAt) / 1000 : 0;
  const rate = elapsed > 0 ? processed / elapsed : 0;
  return {
    ...run, waiting, active, delayed, workers, finished, rate,
    ...(rate > 0 && !finished && { etaSeconds: Math.round((run.total - processed) / rate) }),
  };
}
