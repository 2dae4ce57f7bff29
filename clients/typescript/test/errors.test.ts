// Errors as payments-api sends them, decoded: the code, the message and the details
// (google.rpc.ErrorInfo's reason and metadata, google.rpc.BadRequest's field); which
// failures are retried, and how long apart.

import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ErrorReason, PaymentsError, backoffDelay, newIdempotencyKey } from "../src/index.js";
import { VISA, clientFor, freePortUrl, startStack, type Stack } from "./helpers.js";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ name: "ts_errors" });
  await stack.createPromotionCode("TWICE5", 500);
});

afterAll(async () => {
  await stack?.stop();
});

async function failure(call: Promise<unknown>): Promise<PaymentsError> {
  const error = await call.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(PaymentsError);
  return error as PaymentsError;
}

describe("PaymentsError", () => {
  test("INVALID_ARGUMENT names the field from the BadRequest detail and is not retried", async () => {
    const retries: unknown[] = [];
    const { client, user } = clientFor(stack, stack.apiUrl, undefined, { retry: { onRetry: (e) => retries.push(e) } });
    const card = await client.attachPaymentMethod({ userId: user, paymentMethodId: VISA });
    const error = await failure(
      client.createPayment({ userId: user, paymentMethodId: card.id, amount: 1n, currency: "usd", idempotencyKey: newIdempotencyKey() }),
    );
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.codeName).toBe("INVALID_ARGUMENT");
    expect(error.fieldViolations).toEqual([{ field: "amount", description: expect.stringContaining("at least") }]);
    expect(error.rawMessage).toMatch(/^invalid amount: must be at least/);
    expect([error.domain, error.reason, error.metadata.field]).toEqual(["payments.v1", "INVALID_FIELD", "amount"]);
    expect(error.is(ErrorReason.INVALID_FIELD)).toBe(true);
    expect(error.message).toMatch(/^INVALID_ARGUMENT \(INVALID_FIELD\): invalid amount/);
    expect(error.retryable).toBe(false);
    expect(retries).toEqual([]);
  });

  test("an unknown promotion code names the code field", async () => {
    const { client, user } = clientFor(stack, stack.apiUrl);
    const error = await failure(client.applyCoupon({ userId: user, code: "NOSUCHCODE", idempotencyKey: newIdempotencyKey() }));
    expect(error.codeName).toBe("INVALID_ARGUMENT");
    expect(error.fieldViolations.map((v) => v.field)).toEqual(["code"]);
    expect(error.is(ErrorReason.COUPON_NOT_FOUND)).toBe(true);
    expect(error.message).toContain("NOSUCHCODE");
  });

  test("a second redemption of a code is ALREADY_EXISTS", async () => {
    const { client, user } = clientFor(stack, stack.apiUrl);
    const first = await client.applyCoupon({ userId: user, code: "TWICE5", idempotencyKey: newIdempotencyKey() });
    await client.awaitTransaction(first.transaction.id);
    const error = await failure(client.applyCoupon({ userId: user, code: "TWICE5", idempotencyKey: newIdempotencyKey() }));
    expect(error.codeName).toBe("ALREADY_EXISTS");
    expect(error.reason).toBe("COUPON_ALREADY_REDEEMED");
    expect(error.is(ErrorReason.COUPON_ALREADY_REDEEMED)).toBe(true);
    expect(error.is(ErrorReason.COUPON_NOT_FOUND)).toBe(false);
    expect(error.retryable).toBe(false);
  });

  test("a server out of reach is retried with backoff, then reported as retryable", async () => {
    const retries: { attempt: number; delayMs: number }[] = [];
    const { client, user } = clientFor(stack, await freePortUrl(), undefined, {
      retry: { maxAttempts: 3, initialMs: 20, onRetry: ({ attempt, delayMs }) => retries.push({ attempt, delayMs }) },
    });
    const error = await failure(client.getWallet(user));
    expect(error.retryable).toBe(true);
    expect(error.cause.isWireError).toBe(false);
    expect(error.reason).toBeUndefined();
    expect(retries.map((r) => r.attempt)).toEqual([1, 2]);
  });
});

describe("backoffDelay", () => {
  test("grows exponentially to the cap, with half of each delay random", () => {
    const b = { initialMs: 100, maxMs: 1000, multiplier: 2 };
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, b, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, b, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});
