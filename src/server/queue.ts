/**
 * A bounded queue in front of the backbone. Inference already uses every core (onnxruntime's
 * own threads), so running many at once only makes each slower and grows memory; instead a
 * few run, a few wait, and the rest are told to come back (503 + Retry-After) at once,
 * which keeps latency bounded and the process alive under a burst.
 */
import { QUEUE_CONCURRENCY, QUEUE_MAX_WAITING } from '../defaults.js';
import { LookalikeError } from '../errors.js';

export interface QueueOptions {
  /** Jobs running at once (1-2 suits a CPU backbone). */
  concurrency?: number;
  /** Jobs allowed to wait for a slot; one more is refused with SERVER_BUSY. */
  maxWaiting?: number;
}

export interface QueueStats {
  running: number;
  waiting: number;
  concurrency: number;
  maxWaiting: number;
  /** Moving average of a job's duration, ms (0 before the first job). */
  averageMs: number;
  /** Jobs refused with SERVER_BUSY since the start (the 503s). */
  refused: number;
}

interface Waiter {
  start: () => void;
  signal?: AbortSignal;
}

export class InferenceQueue {
  readonly concurrency: number;
  readonly maxWaiting: number;
  private running = 0;
  private readonly waiting: Waiter[] = [];
  private averageMs = 0;
  private refused = 0;

  constructor(options: QueueOptions = {}) {
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? QUEUE_CONCURRENCY));
    this.maxWaiting = Math.max(0, Math.floor(options.maxWaiting ?? QUEUE_MAX_WAITING));
  }

  /**
   * Runs `job` when a slot is free. Throws SERVER_BUSY (with `retryAfter` seconds) when
   * every slot and waiting place is taken; a job whose `signal` aborts while waiting
   * (the client went away) is dropped without running.
   */
  async run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxWaiting) {
        this.refused++;
        throw new LookalikeError('SERVER_BUSY', { retryAfter: this.retryAfterSeconds() });
      }
      await new Promise<void>((resolve, reject) => {
        const waiter: Waiter = { start: resolve, signal };
        this.waiting.push(waiter);
        signal?.addEventListener('abort', () => {
          const at = this.waiting.indexOf(waiter);
          if (at >= 0) {
            this.waiting.splice(at, 1);
            reject(signal.reason ?? new Error('aborted'));
          }
        }, { once: true });
      });
      // The finishing job handed its slot over: `running` already counts this one.
    } else {
      this.running++;
    }
    const started = performance.now();
    try {
      return await job();
    } finally {
      const ms = performance.now() - started;
      this.averageMs = this.averageMs ? this.averageMs * 0.8 + ms * 0.2 : ms;
      const next = this.waiting.shift();
      if (next) next.start();
      else this.running--;
    }
  }

  /** Seconds until a refused client may reasonably find a free place (at least 1). */
  retryAfterSeconds(): number {
    const ahead = this.running + this.waiting.length;
    return Math.max(1, Math.ceil((ahead / this.concurrency) * (this.averageMs || 500) / 1000));
  }

  stats(): QueueStats {
    return {
      running: this.running,
      waiting: this.waiting.length,
      concurrency: this.concurrency,
      maxWaiting: this.maxWaiting,
      averageMs: Math.round(this.averageMs * 10) / 10,
      refused: this.refused,
    };
  }
}
