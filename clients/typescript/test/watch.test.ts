// watchTransaction and awaitTransaction against a real payments-api: reconnecting after a
// deploy (SIGTERM ends streams with UNAVAILABLE), a crash and a network drop; versions
// delivered once each and in order; and stopping when settled or aborted.

import { create } from "@bufbuild/protobuf";
import { Code, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  PaymentsError,
  TransactionSchema,
  TransactionStatus,
  newIdempotencyKey,
  statusName,
  type ReconnectEvent,
  type Transaction,
  type TransactionUpdate,
} from "../src/index.js";
import { startProxy, type Proxy } from "./proxy.js";
import {
  clientFor,
  completeThreeDs,
  eventually,
  pendingThreeDs,
  startStack,
  type Stack,
  type TestClient,
} from "./helpers.js";

let stack: Stack;
let proxy: Proxy;

beforeAll(async () => {
  stack = await startStack({ name: "ts_watch" });
  proxy = await startProxy(stack.apiPort);
});

afterAll(async () => {
  await proxy?.close();
  await stack?.stop();
});

const FAST = { initialMs: 50, maxMs: 500 };

/** Watches in the background, keeping what arrives. */
function watchInBackground(tc: TestClient, id: string) {
  const seen: Transaction[] = [];
  const reconnects: ReconnectEvent[] = [];
  const done = (async () => {
    for await (const tx of tc.client.watchTransaction(id, { backoff: FAST, onReconnect: (e) => reconnects.push(e) })) {
      seen.push(tx);
    }
  })();
  return { seen, reconnects, done };
}

function expectStrictlyIncreasing(seen: Transaction[]) {
  const versions = seen.map((tx) => tx.version);
  for (let i = 1; i < versions.length; i++) expect(versions[i]!).toBeGreaterThan(versions[i - 1]!);
}

/** A 3DS top-up watched in the background, once its REQUIRES_ACTION has arrived. */
async function watchedThreeDs(tc: TestClient) {
  const started = await pendingThreeDs(tc);
  const watch = watchInBackground(tc, started.transaction.id);
  await eventually("REQUIRES_ACTION", () => watch.seen.length === 1);
  expect(statusName(watch.seen[0]!.status)).toBe("REQUIRES_ACTION");
  return { started, watch };
}

/** Completes the 3DS challenge and checks the watch delivered each version once, in order. */
async function settlesOnce({ started, watch }: Awaited<ReturnType<typeof watchedThreeDs>>) {
  await completeThreeDs(stack, started);
  await watch.done;
  expect(watch.seen.map((tx) => statusName(tx.status))).toEqual(["REQUIRES_ACTION", "SUCCEEDED"]);
  expectStrictlyIncreasing(watch.seen);
}

describe("watchTransaction", () => {
  test("reconnects after payments-api restarts (streams end with UNAVAILABLE) and delivers each version once", async () => {
    const tc = clientFor(stack, stack.apiUrl);
    const watched = await watchedThreeDs(tc);
    const { watch } = watched;

    await stack.restartApi();
    // The new instance answered the reconnect (its first message is the version already
    // delivered, which must not be delivered again).
    await eventually("the reconnect", () => tc.watchConnections() >= 2);
    expect(watch.reconnects[0]?.error?.code).toBe(Code.Unavailable);
    expect(watch.reconnects[0]?.error?.reason).toBe("SHUTTING_DOWN");
    expect(watch.reconnects[0]?.error?.retryable).toBe(true);
    await settlesOnce(watched);
  });

  test("reconnects after the network drops the stream", async () => {
    const tc = clientFor(stack, proxy.url);
    const watched = await watchedThreeDs(tc);

    proxy.cutAll();
    await eventually("the reconnect", () => tc.watchConnections() >= 2);
    const cause = watched.watch.reconnects[0]?.error;
    expect(cause?.retryable).toBe(true);
    expect(cause?.cause.isWireError).toBe(false);
    await settlesOnce(watched);
  });

  test("reconnects after payments-api crashes, and catches up on a change made while it was down", async () => {
    const tc = clientFor(stack, stack.apiUrl);
    const { started, watch } = await watchedThreeDs(tc);

    // The payment settles while no payments-api runs: the reconnect's snapshot has it.
    await stack.restartApi({
      signal: "SIGKILL",
      whileDown: async () => {
        await completeThreeDs(stack, started);
        await eventually("the webhook to settle the row", () =>
          stack.sql(`SELECT status FROM transactions WHERE id = '${started.transaction.id}'`).trim() === "succeeded",
        );
      },
    });
    await watch.done;
    expect(watch.seen.map((tx) => statusName(tx.status))).toEqual(["REQUIRES_ACTION", "SUCCEEDED"]);
    expectStrictlyIncreasing(watch.seen);
    expect(watch.reconnects.length).toBeGreaterThanOrEqual(1);
  });

  test("never delivers an older version after a newer one", async () => {
    // What a lagging replica or cache in front of the service would do: the reconnect's
    // stream begins with a version older than the one already delivered.
    let connections = 0;
    const stale: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (!res.stream || req.method.name !== "WatchTransaction") return res;
      connections += 1;
      if (connections === 1) return res;
      const real = (res.message as AsyncIterable<TransactionUpdate>)[Symbol.asyncIterator]();
      async function* olderFirst() {
        const first = await real.next();
        if (first.done) return;
        const tx = first.value.transaction!;
        yield { ...first.value, transaction: create(TransactionSchema, { ...tx, status: TransactionStatus.CREATED, version: tx.version - 1n }) };
        yield first.value;
        for (let next = await real.next(); !next.done; next = await real.next()) yield next.value;
      }
      return { ...res, message: olderFirst() };
    };
    const tc = clientFor(stack, proxy.url, undefined, { interceptors: [stale] });
    const watched = await watchedThreeDs(tc);
    proxy.cutAll();
    await eventually("the reconnect", () => connections >= 2);
    await settlesOnce(watched);
  });

  test("ends quietly when the caller aborts", async () => {
    const tc = clientFor(stack, stack.apiUrl);
    const started = await pendingThreeDs(tc);
    const abort = new AbortController();
    const seen: Transaction[] = [];
    const done = (async () => {
      for await (const tx of tc.client.watchTransaction(started.transaction.id, { signal: abort.signal })) seen.push(tx);
    })();
    await eventually("REQUIRES_ACTION", () => seen.length === 1);
    abort.abort();
    await done;
    expect(seen.map((tx) => statusName(tx.status))).toEqual(["REQUIRES_ACTION"]);
  });

  test("an error no retry cures ends the watch with it", async () => {
    const tc = clientFor(stack, stack.apiUrl);
    const other = clientFor(stack, stack.apiUrl);
    const started = await pendingThreeDs(other);
    // Another user's transaction looks like one that does not exist.
    const watching = (async () => {
      for await (const _ of tc.client.watchTransaction(started.transaction.id, { backoff: FAST })) {
        // nothing arrives
      }
    })();
    await expect(watching).rejects.toMatchObject({
      name: "PaymentsError",
      code: Code.NotFound,
      reason: "TRANSACTION_NOT_FOUND",
      retryable: false,
    });
  });
});

describe("awaitTransaction", () => {
  test("returns the settled transaction", async () => {
    const tc = clientFor(stack, stack.apiUrl);
    const card = await tc.client.attachPaymentMethod({ userId: tc.user, paymentMethodId: "pm_card_visa" });
    const started = await tc.client.createPayment({
      userId: tc.user,
      paymentMethodId: card.id,
      amount: 700n,
      currency: "usd",
      idempotencyKey: newIdempotencyKey(),
    });
    const settled = await tc.client.awaitTransaction(started.transaction.id);
    expect(statusName(settled.status)).toBe("SUCCEEDED");
    expect(settled.amount).toBe(700n);
    expect((await tc.client.getWallet(tc.user)).balance).toBe(700n);
  });

  test("returns at the awaited status, and the settled one after it", async () => {
    const tc = clientFor(stack, stack.apiUrl);
    const started = await pendingThreeDs(tc);
    const waiting = await tc.client.awaitTransaction(started.transaction.id, { status: TransactionStatus.REQUIRES_ACTION });
    expect(statusName(waiting.status)).toBe("REQUIRES_ACTION");
    await completeThreeDs(stack, started);
    const settled = await tc.client.awaitTransaction(started.transaction.id);
    expect(statusName(settled.status)).toBe("SUCCEEDED");
    expect(settled.version).toBeGreaterThan(waiting.version);
  });

  test("rejects with CANCELED when aborted first", async () => {
    const tc = clientFor(stack, stack.apiUrl);
    const started = await pendingThreeDs(tc);
    const abort = new AbortController();
    const awaiting = tc.client.awaitTransaction(started.transaction.id, { signal: abort.signal });
    setTimeout(() => abort.abort(), 200);
    const error = await awaiting.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PaymentsError);
    expect((error as PaymentsError).code).toBe(Code.Canceled);
  });
});
