// When a call may be made again, and how long to wait first: the one rule that both the
// reconnecting watch and the idempotent mutations follow.

import { Code, ConnectError } from "@connectrpc/connect";

/** Exponential backoff with jitter. */
export interface Backoff {
  /** The first delay's ceiling, in ms (default 250). */
  initialMs?: number;
  /** The largest delay, in ms (default 10,000). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  multiplier?: number;
}

const DEFAULT_BACKOFF: Required<Backoff> = { initialMs: 250, maxMs: 10_000, multiplier: 2 };

/**
 * The delay before retry number `attempt` (0 for the first): the ceiling grows
 * exponentially up to `maxMs`, and the delay is half the ceiling plus a random part of the
 * other half ("equal jitter"), so clients cut off together by a deploy do not come back
 * together, yet none retries at once.
 */
export function backoffDelay(attempt: number, backoff: Backoff = {}, random: () => number = Math.random): number {
  const { initialMs, maxMs, multiplier } = { ...DEFAULT_BACKOFF, ...backoff };
  const ceiling = Math.min(maxMs, initialMs * multiplier ** Math.max(0, attempt));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/**
 * Whether a failure is worth the same call again: the server said UNAVAILABLE (a deploy,
 * the database or Stripe out of reach), RESOURCE_EXHAUSTED (rate limited), ABORTED or
 * DEADLINE_EXCEEDED, or the call never got an answer at all (a network drop, a proxy
 * cutting the connection, a stream cut before its trailers). A cancellation by the caller
 * never is. Mutations are retried only with their idempotency key, so "worth it" is also
 * "safe".
 */
export function isTransient(err: unknown): boolean {
  const error = ConnectError.from(err);
  switch (error.code) {
    case Code.Unavailable:
    case Code.ResourceExhausted:
    case Code.Aborted:
    case Code.DeadlineExceeded:
      return true;
    case Code.Canceled:
      return false;
    default:
      // An answer from the server (a status in the trailers) is final; anything else
      // failed on the way.
      return !error.isWireError;
  }
}

/** Resolves after `ms`, or as soon as `signal` aborts (without throwing). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
