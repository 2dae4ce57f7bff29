// Idempotency keys against a real payments-api: one key is one transaction and one
// PaymentIntent, whether the same call comes twice at once (a double click) or again after
// the network lost the first answer; a key cannot be reused for another request.

import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ErrorReason, PaymentsError, newIdempotencyKey, statusName } from "../src/index.js";
import { startProxy, type Proxy } from "./proxy.js";
import { VISA, clientFor, startStack, type Stack } from "./helpers.js";

let stack: Stack;
let proxy: Proxy;

beforeAll(async () => {
  stack = await startStack({ name: "ts_keys" });
  proxy = await startProxy(stack.apiPort);
});

afterAll(async () => {
  await proxy?.close();
  await stack?.stop();
});

/** payments of `user` in the database: `id|idempotency key|PaymentIntent` rows. */
function paymentRows(user: string): string[] {
  return stack
    .sql(`SELECT id, idempotency_key, stripe_payment_intent_id FROM transactions WHERE user_id = '${user}' AND kind = 'payment'`)
    .trim()
    .split("\n")
    .filter(Boolean);
}

describe("idempotency keys", () => {
  test("two concurrent calls with one key make one transaction and one PaymentIntent", async () => {
    const { client, user } = clientFor(stack, stack.apiUrl);
    const card = await client.attachPaymentMethod({ userId: user, paymentMethodId: VISA });
    const input = { userId: user, paymentMethodId: card.id, amount: 1200n, currency: "usd", idempotencyKey: newIdempotencyKey() };
    const [a, b] = await Promise.all([client.createPayment(input), client.createPayment(input)]);
    expect(a.transaction.id).toBe(b.transaction.id);
    expect(paymentRows(user)).toHaveLength(1);
    const intents = await stack.customerPaymentIntents(a.transaction.stripePaymentIntentId);
    expect(intents.map((pi: { id: string }) => pi.id)).toEqual([a.transaction.stripePaymentIntentId]);
    expect(statusName((await client.awaitTransaction(a.transaction.id)).status)).toBe("SUCCEEDED");
    expect((await client.getWallet(user)).balance).toBe(1200n);
  });

  test("a retry after the network lost the answer reuses the key and gets the first attempt's transaction", async () => {
    const retries: PaymentsError[] = [];
    const { client, user } = clientFor(stack, proxy.url, undefined, {
      retry: { initialMs: 50, onRetry: ({ error }) => retries.push(error) },
    });
    const card = await client.attachPaymentMethod({ userId: user, paymentMethodId: VISA });
    const before = proxy.requests("/CreatePayment");
    proxy.dropNextResponse();
    const key = newIdempotencyKey();
    const started = await client.createPayment({ userId: user, paymentMethodId: card.id, amount: 900n, currency: "usd", idempotencyKey: key });

    // The first attempt reached the server (which created the transaction) and its answer
    // was lost; the second, with the same key, got that transaction back.
    expect(proxy.requests("/CreatePayment") - before).toBe(2);
    expect(retries).toHaveLength(1);
    expect(retries[0]!.cause.isWireError).toBe(false);
    expect(paymentRows(user)).toEqual([`${started.transaction.id}|${key}|${started.transaction.stripePaymentIntentId}`]);
    const intents = await stack.customerPaymentIntents(started.transaction.stripePaymentIntentId);
    expect(intents).toHaveLength(1);
    await client.awaitTransaction(started.transaction.id);
    expect((await client.getWallet(user)).balance).toBe(900n);
  });

  test("the same key for a different request is refused, and nothing is charged twice", async () => {
    const { client, user } = clientFor(stack, stack.apiUrl);
    const card = await client.attachPaymentMethod({ userId: user, paymentMethodId: VISA });
    const key = newIdempotencyKey();
    const first = await client.createPayment({ userId: user, paymentMethodId: card.id, amount: 800n, currency: "usd", idempotencyKey: key });
    const error = await client
      .createPayment({ userId: user, paymentMethodId: card.id, amount: 1800n, currency: "usd", idempotencyKey: key })
      .then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(PaymentsError);
    const refused = error as PaymentsError;
    expect(refused.code).toBe(Code.FailedPrecondition);
    expect(refused.is(ErrorReason.IDEMPOTENCY_KEY_REUSED)).toBe(true);
    expect(refused.metadata.idempotency_key).toBe(key);
    expect(refused.metadata.changed).toContain("amount");
    expect(refused.retryable).toBe(false);
    expect(paymentRows(user)).toHaveLength(1);
    expect(paymentRows(user)[0]).toContain(first.transaction.id);
  });

  test("a mutation without a key is refused before anything is sent", async () => {
    const { client, user } = clientFor(stack, proxy.url);
    const before = proxy.requests("/ApplyCoupon");
    await expect(client.applyCoupon({ userId: user, code: "WELCOME", idempotencyKey: "" })).rejects.toThrow(/idempotencyKey is required/);
    expect(proxy.requests("/ApplyCoupon")).toBe(before);
  });

  test("newIdempotencyKey makes distinct UUIDs", () => {
    const keys = new Set(Array.from({ length: 1000 }, newIdempotencyKey));
    expect(keys.size).toBe(1000);
    for (const key of keys) expect(key).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
