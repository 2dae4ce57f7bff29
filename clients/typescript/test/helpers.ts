// The system under test and typed shortcuts for the tests: a real payments-api (with
// webhook-ingestor and stripe-sim, scripts/stack.mjs) and a PaymentsClient over grpc-web
// on Node's fetch, the browser's code path.

import { randomBytes } from "node:crypto";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { PaymentsClient, bearerAuth, newIdempotencyKey, type PaymentsClientOptions, type Started } from "../src/index.js";
import { freePort, startStack, type Stack } from "../../../scripts/stack.mjs";

export type { Stack } from "../../../scripts/stack.mjs";
export { startStack };

export const THREE_DS_CARD = "pm_card_threeDSecure2Required";
export const VISA = "pm_card_visa";

export function newUser(): string {
  return `ts-${randomBytes(4).toString("hex")}`;
}

export interface TestClient {
  client: PaymentsClient;
  user: string;
  /** WatchTransaction responses received (each connection of a watch counts once). */
  watchConnections(): number;
}

/** A client for `user` at `baseUrl`, counting the watch connections it opens. */
export function clientFor(
  stack: Stack,
  baseUrl: string,
  user: string = newUser(),
  options: PaymentsClientOptions & { interceptors?: Parameters<typeof createGrpcWebTransport>[0]["interceptors"] } = {},
): TestClient {
  let connections = 0;
  const transport = createGrpcWebTransport({
    baseUrl,
    interceptors: [bearerAuth(() => stack.token(user)), ...(options.interceptors ?? [])],
    fetch: async (input, init) => {
      const res = await fetch(input, init);
      if (String(input).endsWith("/WatchTransaction")) connections += 1;
      return res;
    },
  });
  return { client: new PaymentsClient(transport, options), user, watchConnections: () => connections };
}

/** A top-up with the 3DS test card: the transaction waits in REQUIRES_ACTION. */
export async function pendingThreeDs({ client, user }: TestClient, amount = 1500n): Promise<Started> {
  const card = await client.attachPaymentMethod({ userId: user, paymentMethodId: THREE_DS_CARD });
  const started = await client.createPayment({
    userId: user,
    paymentMethodId: card.id,
    amount,
    currency: "usd",
    idempotencyKey: newIdempotencyKey(),
  });
  if (!started.clientSecret) throw new Error(`expected a 3DS challenge, got ${JSON.stringify(started.transaction.status)}`);
  return started;
}

/** Answers the 3DS challenge of `started` as stripe.js would. */
export async function completeThreeDs(stack: Stack, started: Started): Promise<void> {
  const clientSecret = started.clientSecret ?? "";
  await stack.authenticate3ds(clientSecret.split("_secret_")[0], clientSecret);
}

/** Polls `check` (test code only: the library never polls) until it holds. */
export async function eventually(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The URL of a port nothing listens on. */
export async function freePortUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}
