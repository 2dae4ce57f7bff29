// WatchTransaction that survives what happens to long streams in production: a deploy
// (the server ends streams with UNAVAILABLE), a proxy or network dropping the connection,
// a stream that ends before the transaction settled. It reconnects with backoff, and since
// every reconnect begins with the current state again, it delivers each version at most
// once and never an older one after a newer one. Which failures reconnect is
// PaymentsError.retryable; a server's RetryInfo delay is respected.

import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { type PaymentsService, type Transaction, type TransactionStatus } from "./gen/payments/v1/payments_pb.js";
import { PaymentsError } from "./errors.js";
import { type Backoff, backoffDelay, sleep } from "./retry.js";
import { isSettled } from "./status.js";

/** What a reconnect is about to do, for a "reconnecting…" indicator or a log line. */
export interface ReconnectEvent {
  /** 1 for the first reconnect after a failure; back to 1 once a new version arrived. */
  attempt: number;
  /** How long it waits before reconnecting. */
  delayMs: number;
  /** Why: the failure, or undefined when the stream ended before the transaction settled. */
  error: PaymentsError | undefined;
}

export interface WatchOptions {
  /** Stops the watch: the iteration ends (awaitTransaction rejects with CANCELED). */
  signal?: AbortSignal;
  /** End as soon as the transaction reaches this status, not only when it settles. */
  status?: TransactionStatus;
  /** Reconnect delays (default: 250 ms doubling up to 10 s, with jitter). */
  backoff?: Backoff;
  /** Reconnects in a row without a new version before the last error is thrown (default: no limit). */
  maxRetries?: number;
  /** Called before each reconnect. */
  onReconnect?: (event: ReconnectEvent) => void;
  /**
   * Called when a stream (the first or a reconnect) answers with its first message, even
   * one that is not delivered because its version was already seen: the watch is live.
   */
  onLive?: () => void;
}

type Rpc = Client<typeof PaymentsService>;

/**
 * Every new version of the transaction, from its current state on, until it settles (or
 * reaches `options.status`) or `options.signal` aborts. Failures that a retry can cure
 * reconnect; any other failure (NOT_FOUND, PERMISSION_DENIED…) is thrown as a
 * PaymentsError.
 */
export async function* watchTransaction(
  rpc: Rpc,
  transactionId: string,
  options: WatchOptions = {},
): AsyncGenerator<Transaction, void, undefined> {
  const { signal, status } = options;
  let newest: bigint | undefined;
  let failures = 0;
  while (!signal?.aborted) {
    let error: PaymentsError | undefined;
    try {
      const updates = rpc.watchTransaction({ transactionId, awaitStatus: status }, { signal });
      let answered = false;
      for await (const { transaction: tx } of updates) {
        if (!answered) {
          answered = true;
          options.onLive?.();
        }
        // A reconnect starts with the current state, which may be the version already
        // delivered, or (from a lagging replica or cache) an older one.
        if (!tx || (newest !== undefined && tx.version <= newest)) continue;
        newest = tx.version;
        failures = 0;
        yield tx;
        if (isSettled(tx.status) || (status !== undefined && tx.status === status)) return;
      }
    } catch (err) {
      if (signal?.aborted) return;
      error = PaymentsError.from(err);
      if (!error.retryable) throw error;
    }
    if (signal?.aborted) return;
    if (options.maxRetries !== undefined && failures >= options.maxRetries) {
      throw error ?? PaymentsError.from(new ConnectError("the stream ended before the transaction settled", Code.Unavailable));
    }
    const delayMs = Math.max(backoffDelay(failures, options.backoff), error?.retryDelayMs ?? 0);
    failures += 1;
    options.onReconnect?.({ attempt: failures, delayMs, error });
    await sleep(delayMs, signal);
  }
}

/**
 * The transaction once it has settled, or reached `options.status` if given (whichever
 * comes first), reconnecting as `watchTransaction` does. Rejects with a PaymentsError:
 * CANCELED when `options.signal` aborts first.
 */
export async function awaitTransaction(
  rpc: Rpc,
  transactionId: string,
  options: WatchOptions = {},
): Promise<Transaction> {
  let last: Transaction | undefined;
  for await (const tx of watchTransaction(rpc, transactionId, options)) last = tx;
  if (last && (isSettled(last.status) || last.status === options.status)) return last;
  throw PaymentsError.from(new ConnectError("stopped before the transaction settled", Code.Canceled));
}
