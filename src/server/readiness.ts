/**
 * Liveness and readiness, the way orchestrators ask: live is "the process answers"; ready
 * is "send it traffic": the model is loaded, the server is not shutting down and, on a
 * replica of a shared store, its answers were confirmed to be the database's latest less
 * than `maxStalenessSeconds` ago. A replica cut off from its database keeps answering from
 * memory (it stays live, and its answers stay correct for that generation), but past the
 * bound it says it is not ready, so a load balancer prefers replicas that are current.
 */
import type { Freshness } from '../lookalike.js';
import type { Readiness, ServerContext } from './context.js';

/** The replica's freshness, or undefined for a folder index (read directly: never behind). */
export function freshnessOf(ctx: ServerContext): Freshness | undefined {
  return ctx.lookalike.freshness();
}

export function readinessOf(ctx: ServerContext): Readiness {
  const reasons: string[] = [];
  if (ctx.model.state === 'loading') reasons.push('the model is still loading');
  if (ctx.model.state === 'failed') reasons.push(`the model could not be loaded: ${ctx.model.message ?? 'unknown reason'}`);
  if (ctx.draining) reasons.push('the server is shutting down');
  const f = freshnessOf(ctx);
  let store: Readiness['store'];
  if (f) {
    const lagSeconds = Math.round(f.lagSeconds * 10) / 10;
    store = { generation: f.generation, storeGeneration: f.storeGeneration, lagSeconds, maxStalenessSeconds: ctx.maxStalenessSeconds, confirmedAt: new Date(f.confirmedAt).toISOString() };
    if (f.lagSeconds > ctx.maxStalenessSeconds) {
      reasons.push(`the answers were last confirmed current ${lagSeconds} s ago (over the ${ctx.maxStalenessSeconds} s allowed): the database is unreachable or the replica cannot catch up`);
    }
  }
  return { ready: reasons.length === 0, reasons, model: ctx.model, draining: ctx.draining, ...(store && { store }) };
}
