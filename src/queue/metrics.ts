/**
 * A worker's numbers for Prometheus (prom-client): images embedded and failed, the rate
 * over the last minute, batches taken over from workers that died, and catalog images that
 * could not be read or fetched. `lookalike worker --metrics-port` serves them.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

const RATE_WINDOW_MS = 60_000;

export interface WorkerMetrics {
  batchDone(items: { embedded: number; failed: number; seconds: number }): void;
  imageFailures(sources: string[]): void;
  takenBack(): void;
  storeRetry(): void;
}

export function workerMetrics(registry: Registry): WorkerMetrics {
  const images = new Counter({ name: 'lookalike_worker_images_total', help: 'Catalog images this worker processed, by outcome', labelNames: ['outcome'], registers: [registry] });
  const batches = new Histogram({
    name: 'lookalike_worker_batch_duration_seconds', help: 'Time from taking a batch to its vectors being written and counted',
    buckets: [0.5, 1, 2, 5, 10, 20, 40, 80, 160], registers: [registry],
  });
  const recent: Array<{ at: number; images: number }> = [];
  new Gauge({
    name: 'lookalike_worker_images_per_second', help: `Images this worker embedded per second over the last ${RATE_WINDOW_MS / 1000} s`, registers: [registry],
    collect() {
      const since = Date.now() - RATE_WINDOW_MS;
      while (recent.length && recent[0].at < since) recent.shift();
      this.set(recent.reduce((sum, r) => sum + r.images, 0) / (RATE_WINDOW_MS / 1000));
    },
  });
  const takenBack = new Counter({ name: 'lookalike_worker_batches_taken_back_total', help: 'Batches this worker took over after their worker stopped renewing its lock (killed, frozen or cut off)', registers: [registry] });
  const fetchFailures = new Counter({ name: 'lookalike_worker_fetch_failures_total', help: 'Catalog images that could not be read (file) or fetched (url)', labelNames: ['source'], registers: [registry] });
  const storeRetries = new Counter({ name: 'lookalike_worker_store_retries_total', help: 'Batches whose write waited for the store to come back', registers: [registry] });
  images.inc({ outcome: 'embedded' }, 0);
  images.inc({ outcome: 'failed' }, 0);
  fetchFailures.inc({ source: 'file' }, 0);
  fetchFailures.inc({ source: 'url' }, 0);
  return {
    batchDone({ embedded, failed, seconds }) {
      images.inc({ outcome: 'embedded' }, embedded);
      images.inc({ outcome: 'failed' }, failed);
      batches.observe(seconds);
      recent.push({ at: Date.now(), images: embedded });
    },
    imageFailures(sources) {
      for (const s of sources) fetchFailures.inc({ source: /^https?:\/\//i.test(s) ? 'url' : 'file' });
    },
    takenBack: () => takenBack.inc(),
    storeRetry: () => storeRetries.inc(),
  };
}
