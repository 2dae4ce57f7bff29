// React bindings (entry point @payments/client/react): what a polling provider used to
// do, from streams. `useTransaction` follows one transaction; `usePayment` starts one
// (top-up, coupon, card validation, trial) with an idempotency key kept per user intent,
// then follows it, exposing the 3DS client secret while the bank asks for it.

import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  type ReactNode,
} from "react";
import {
  type ApplyCouponInput,
  type CardInput,
  type CreatePaymentInput,
  type PaymentsClient,
  type Started,
} from "./client.js";
import { type Transaction, TransactionStatus } from "./gen/payments/v1/payments_pb.js";
import { PaymentsError } from "./errors.js";
import { newIdempotencyKey } from "./idempotency.js";
import { isSettled } from "./status.js";
import { type WatchOptions } from "./watch.js";

const PaymentsContext = createContext<PaymentsClient | null>(null);

/** Makes `client` the one the hooks below use. */
export function PaymentsProvider({ client, children }: { client: PaymentsClient; children?: ReactNode }) {
  return createElement(PaymentsContext.Provider, { value: client }, children);
}

export function usePaymentsClient(): PaymentsClient {
  const client = useContext(PaymentsContext);
  if (!client) throw new Error("usePaymentsClient: wrap the app in <PaymentsProvider client={…}>");
  return client;
}

/**
 * The stream's state: `connecting` until the first version, `live` while versions can
 * arrive, `reconnecting` while it waits to reconnect after a drop or a deploy, `ended`
 * once the transaction settled (or an error that no retry cures ended the watch).
 */
export type Connection = "idle" | "connecting" | "live" | "reconnecting" | "ended";

export interface TransactionState {
  /** The newest version seen. */
  transaction: Transaction | undefined;
  status: TransactionStatus | undefined;
  settled: boolean;
  connection: Connection;
  error: PaymentsError | undefined;
}

export interface UseTransactionOptions extends Pick<WatchOptions, "status" | "backoff"> {
  /** Called with every version, in order (React may render only the newest of several). */
  onUpdate?: (transaction: Transaction) => void;
}

interface Watched {
  id: string | undefined;
  transaction: Transaction | undefined;
  connection: Connection;
  error: PaymentsError | undefined;
}

const IDLE: Watched = { id: undefined, transaction: undefined, connection: "idle", error: undefined };

/** Follows transaction `id` (none while it is null or undefined) until it settles. */
export function useTransaction(id: string | null | undefined, options: UseTransactionOptions = {}): TransactionState {
  const client = usePaymentsClient();
  const [watched, setWatched] = useState<Watched>(IDLE);
  const onUpdate = useRef(options.onUpdate);
  onUpdate.current = options.onUpdate;
  const { status, backoff } = options;
  const backoffKey = JSON.stringify(backoff ?? null);

  useEffect(() => {
    if (!id) {
      setWatched(IDLE);
      return;
    }
    const abort = new AbortController();
    const update = (change: Partial<Watched>) => {
      if (!abort.signal.aborted) setWatched((w) => (w.id === id ? { ...w, ...change } : w));
    };
    setWatched({ id, transaction: undefined, connection: "connecting", error: undefined });
    void (async () => {
      try {
        const updates = client.watchTransaction(id, {
          signal: abort.signal,
          status,
          backoff,
          // A failure a reconnect cures is not the caller's error: only the state shows it.
          onReconnect: () => update({ connection: "reconnecting" }),
          onLive: () => update({ connection: "live" }),
        });
        for await (const tx of updates) {
          update({ transaction: tx, connection: "live", error: undefined });
          onUpdate.current?.(tx);
        }
        update({ connection: "ended" });
      } catch (err) {
        update({ connection: "ended", error: PaymentsError.from(err) });
      }
    })();
    return () => abort.abort();
    // backoffKey stands for `backoff`, which callers usually pass as a new object literal.
  }, [client, id, status, backoffKey]);

  const current = watched.id === id ? watched : { ...IDLE, id };
  return {
    transaction: current.transaction,
    status: current.transaction?.status,
    settled: isSettled(current.transaction?.status),
    connection: current.connection,
    error: current.error,
  };
}

export interface PaymentState extends TransactionState {
  /** True from the call until the server answered it (or it failed). */
  submitting: boolean;
  /** Set while the transaction is REQUIRES_ACTION: pass it to stripe.confirmCardPayment. */
  clientSecret: string | undefined;
  /** The key of the current intent (the one the next call for the same request reuses). */
  idempotencyKey: string | undefined;
  /** Tops up the wallet by card. */
  createPayment(input: Omit<CreatePaymentInput, "idempotencyKey">): Promise<Started | undefined>;
  /** Redeems a promotion code. */
  applyCoupon(input: Omit<ApplyCouponInput, "idempotencyKey">): Promise<Started | undefined>;
  /** Validates a card. */
  validatePaymentMethod(input: CardInput): Promise<Started | undefined>;
  /** Validates a card whose success starts the trial. */
  startTrial(input: CardInput): Promise<Started | undefined>;
  /** Forgets the current intent: the next call is a new one, with a new key. */
  reset(): void;
}

interface Intent {
  /** The request, as text: the same request again is the same intent. */
  request: string;
  key: string;
  /** The call in flight, which a second identical call joins (a double click). */
  inFlight: Promise<Started | undefined> | undefined;
  transactionId: string | undefined;
}

/**
 * Starts a payment flow and follows it. The hook keeps one idempotency key per user
 * intent: calling again with the same request (a double click, a retry after a network
 * error) reuses it, so the server answers with the transaction already created; a
 * different request, or any request once the transaction has settled (or after `reset()`),
 * is a new intent with a new key. Calls never reject: failures are in `error`.
 */
export function usePayment(options: UseTransactionOptions = {}): PaymentState {
  const client = usePaymentsClient();
  const [startedTx, setStartedTx] = useState<Started | undefined>();
  const [submitting, setSubmitting] = useState(false);
  const [callError, setCallError] = useState<PaymentsError | undefined>();
  const intent = useRef<Intent | undefined>(undefined);
  const settledIds = useRef(new Set<string>());
  const watched = useTransaction(startedTx?.transaction.id, {
    ...options,
    onUpdate: (tx) => {
      if (isSettled(tx.status)) settledIds.current.add(tx.id);
      options.onUpdate?.(tx);
    },
  });

  const run = useCallback(
    (kind: string, request: object, call: (key: string) => Promise<Started>): Promise<Started | undefined> => {
      const text = `${kind}:${JSON.stringify(request, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`;
      const current = intent.current;
      const sameIntent =
        current?.request === text && !(current.transactionId && settledIds.current.has(current.transactionId));
      if (sameIntent && current.inFlight) return current.inFlight;
      const next: Intent = sameIntent ? current : { request: text, key: newIdempotencyKey(), inFlight: undefined, transactionId: undefined };
      intent.current = next;
      setSubmitting(true);
      setCallError(undefined);
      next.inFlight = (async () => {
        try {
          const result = await call(next.key);
          next.transactionId = result.transaction.id;
          if (isSettled(result.transaction.status)) settledIds.current.add(result.transaction.id);
          if (intent.current === next) setStartedTx(result);
          return result;
        } catch (err) {
          if (intent.current === next) setCallError(PaymentsError.from(err));
          return undefined;
        } finally {
          next.inFlight = undefined;
          if (intent.current === next) setSubmitting(false);
        }
      })();
      return next.inFlight;
    },
    [],
  );

  const reset = useCallback(() => {
    intent.current = undefined;
    setStartedTx(undefined);
    setSubmitting(false);
    setCallError(undefined);
  }, []);

  // The answer to the call is the first version; the stream brings the newer ones.
  const first = startedTx?.transaction;
  const transaction =
    watched.transaction && (!first || watched.transaction.version >= first.version) ? watched.transaction : first;
  const status = transaction?.status;
  return {
    transaction,
    status,
    settled: isSettled(status),
    connection: watched.connection,
    error: callError ?? watched.error,
    submitting,
    clientSecret: status === TransactionStatus.REQUIRES_ACTION ? startedTx?.clientSecret : undefined,
    idempotencyKey: intent.current?.key,
    createPayment: (input) => run("createPayment", input, (key) => client.createPayment({ ...input, idempotencyKey: key })),
    applyCoupon: (input) => run("applyCoupon", input, (key) => client.applyCoupon({ ...input, idempotencyKey: key })),
    validatePaymentMethod: (input) => run("validatePaymentMethod", input, () => client.validatePaymentMethod(input)),
    startTrial: (input) => run("startTrial", input, () => client.startTrial(input)),
    reset,
  };
}
