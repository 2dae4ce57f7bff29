// The client a frontend holds: the generated stubs for every RPC, plus the calls a payment
// flow needs made safe to retry and easy to finish.

import { createClient, type CallOptions, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  PaymentsService,
  type PaymentMethod,
  type Transaction,
  type Wallet,
} from "./gen/payments/v1/payments_pb.js";
import { PaymentsError } from "./errors.js";
import { type Backoff, backoffDelay, sleep } from "./retry.js";
import { awaitTransaction, watchTransaction, type WatchOptions } from "./watch.js";

/** How calls that are safe to repeat are retried after a transient failure. */
export interface RetryPolicy extends Backoff {
  /** Attempts in all, the first included (default 4). 1 turns retries off. */
  maxAttempts?: number;
  /** Called before each retry. */
  onRetry?: (event: { attempt: number; delayMs: number; error: PaymentsError }) => void;
}

export interface PaymentsClientOptions {
  /** Retries of idempotent calls (default: 4 attempts, 200 ms doubling up to 5 s). */
  retry?: RetryPolicy;
}

/** Per-call options: Connect's (signal, timeoutMs, headers) and a retry policy override. */
export interface CallOpts extends CallOptions {
  retry?: RetryPolicy;
}

/** What every action answers: the transaction it created, and the 3DS client secret if needed. */
export interface Started {
  transaction: Transaction;
  /** Set when the card requires 3D Secure: pass it to stripe.confirmCardPayment. */
  clientSecret: string | undefined;
}

export interface CreatePaymentInput {
  userId: string;
  paymentMethodId: string;
  /** Minor units (cents for usd). */
  amount: bigint;
  /** Lower-case ISO 4217, the wallet's currency. */
  currency: string;
  /** One per user intent (newIdempotencyKey()), the same for every retry of it. */
  idempotencyKey: string;
}

export interface ApplyCouponInput {
  userId: string;
  /** A promotion code (or a coupon id). */
  code: string;
  /** One per user intent (newIdempotencyKey()), the same for every retry of it. */
  idempotencyKey: string;
}

/** Card validation and trials need no key: the server derives one from (user, card, purpose). */
export interface CardInput {
  userId: string;
  paymentMethodId: string;
}

const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 4, initialMs: 200, maxMs: 5_000 };

/**
 * `authorization: Bearer <token>` on every call; `getToken` is asked each time, so a
 * refreshed token is used as soon as the app has it.
 */
export function bearerAuth(getToken: () => string | Promise<string>): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${await getToken()}`);
    return next(req);
  };
}

/**
 * payments.v1 over any Connect transport: `createGrpcWebTransport` from
 * `@connectrpc/connect-web` in browsers, `@connectrpc/connect-node`'s in Node.
 * Every method throws PaymentsError.
 */
export class PaymentsClient {
  /** The generated client: every RPC as the contract defines it (errors are ConnectErrors). */
  readonly rpc: Client<typeof PaymentsService>;
  private readonly retry: RetryPolicy;

  constructor(transport: Transport, options: PaymentsClientOptions = {}) {
    this.rpc = createClient(PaymentsService, transport);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }

  /** Tops up the wallet by card; retried with the same key after a transient failure. */
  async createPayment(input: CreatePaymentInput, opts: CallOpts = {}): Promise<Started> {
    requireKey(input.idempotencyKey);
    const res = await this.retrying(opts, (o) => this.rpc.createPayment(input, o));
    return started(res.transaction, res.clientSecret);
  }

  /** Redeems a promotion code as wallet credit; retried with the same key. */
  async applyCoupon(input: ApplyCouponInput, opts: CallOpts = {}): Promise<Started> {
    requireKey(input.idempotencyKey);
    const res = await this.retrying(opts, (o) => this.rpc.applyCoupon(input, o));
    return started(res.transaction, undefined);
  }

  /** Proves a card with a small hold released once it succeeds. */
  async validatePaymentMethod(input: CardInput, opts: CallOpts = {}): Promise<Started> {
    const res = await this.retrying(opts, (o) => this.rpc.validatePaymentMethod(input, o));
    return started(res.transaction, res.clientSecret);
  }

  /** Validates a card whose success starts the wallet's trial. */
  async startTrial(input: CardInput, opts: CallOpts = {}): Promise<Started & { wallet: Wallet | undefined }> {
    const res = await this.retrying(opts, (o) => this.rpc.startTrial(input, o));
    return { ...started(res.transaction, res.clientSecret), wallet: res.wallet };
  }

  /** Attaches a Stripe payment method (or a test token such as pm_card_visa) to the user. */
  async attachPaymentMethod(input: CardInput, opts: CallOpts = {}): Promise<PaymentMethod> {
    return this.retrying({ ...opts, retry: { maxAttempts: 1 } }, (o) => this.rpc.attachPaymentMethod(input, o));
  }

  async getWallet(userId: string, opts: CallOpts = {}): Promise<Wallet> {
    return this.retrying(opts, (o) => this.rpc.getWallet({ userId }, o));
  }

  async getTransaction(transactionId: string, opts: CallOpts = {}): Promise<Transaction> {
    return this.retrying(opts, (o) => this.rpc.getTransaction({ transactionId }, o));
  }

  /** Each new version of the transaction until it settles; reconnects by itself (see WatchOptions). */
  watchTransaction(transactionId: string, options: WatchOptions = {}): AsyncGenerator<Transaction, void, undefined> {
    return watchTransaction(this.rpc, transactionId, options);
  }

  /** The settled transaction (or the one at `options.status`). */
  awaitTransaction(transactionId: string, options: WatchOptions = {}): Promise<Transaction> {
    return awaitTransaction(this.rpc, transactionId, options);
  }

  private async retrying<T>(opts: CallOpts, call: (o: CallOptions) => Promise<T>): Promise<T> {
    const { retry, ...callOptions } = opts;
    const policy = { ...this.retry, ...retry };
    const maxAttempts = Math.max(1, policy.maxAttempts ?? 1);
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(callOptions);
      } catch (err) {
        const error = PaymentsError.from(err);
        if (!error.retryable || attempt >= maxAttempts || opts.signal?.aborted) throw error;
        const delayMs = Math.max(backoffDelay(attempt - 1, policy), error.retryDelayMs ?? 0);
        policy.onRetry?.({ attempt, delayMs, error });
        await sleep(delayMs, opts.signal);
        if (opts.signal?.aborted) throw error;
      }
    }
  }
}

function requireKey(key: string): void {
  if (!key) {
    throw new TypeError(
      "idempotencyKey is required: make one per user intent with newIdempotencyKey() and send it again with every retry",
    );
  }
}

function started(transaction: Transaction | undefined, clientSecret: string | undefined): Started {
  if (!transaction) throw new TypeError("the server answered without a transaction");
  return { transaction, clientSecret: clientSecret || undefined };
}
