// The wallet demo: signs in with a demo token, then tops up with a 3DS card, applies a
// coupon and shows the balance, all through payments.v1 over grpc-web. Nothing is polled:
// every status comes from a WatchTransaction stream, and the wallet is read once each
// stream has ended.

import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  PaymentsService,
  TransactionStatus,
  type Transaction,
} from "../gen/payments/v1/payments_pb.js";

/** What the dev server's `/demo/config` answers. */
interface DemoConfig {
  apiUrl: string;
  stripeSimUrl: string;
}

const TEST_CARD = "pm_card_threeDSecure2Required";

const TERMINAL = new Set<TransactionStatus>([
  TransactionStatus.SUCCEEDED,
  TransactionStatus.FAILED,
  TransactionStatus.CANCELED,
  TransactionStatus.REFUNDED,
]);

// ---------- DOM helpers ----------

function $(testId: string): HTMLElement {
  const el = document.querySelector<HTMLElement>(`[data-testid="${testId}"]`);
  if (!el) throw new Error(`missing element ${testId}`);
  return el;
}

function input(testId: string): HTMLInputElement {
  return $(testId) as HTMLInputElement;
}

function button(testId: string): HTMLButtonElement {
  return $(testId) as HTMLButtonElement;
}

function statusName(status: TransactionStatus): string {
  return TransactionStatus[status] ?? `STATUS_${status}`;
}

function formatMoney(minor: bigint, currency: string): string {
  const code = (currency || "usd").toUpperCase();
  const negative = minor < 0n;
  const abs = negative ? -minor : minor;
  const major = `${abs / 100n}.${(abs % 100n).toString().padStart(2, "0")}`;
  try {
    return new Intl.NumberFormat("en-US", { style: "currency", currency: code }).format(
      Number(`${negative ? "-" : ""}${major}`),
    );
  } catch {
    return `${negative ? "-" : ""}${major} ${code}`;
  }
}

/** Dollars typed by the user to integer cents, without floating-point surprises. */
function parseCents(text: string): bigint | null {
  const m = /^\s*(\d+)(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  return BigInt(m[1]) * 100n + BigInt((m[2] ?? "").padEnd(2, "0"));
}

// ---------- errors ----------

/** Connect's code name (e.g. InvalidArgument) as gRPC spells it (INVALID_ARGUMENT). */
function grpcCodeName(code: Code): string {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

function showError(context: string, err: unknown): void {
  const box = $("error");
  let code = "ERROR";
  let message = err instanceof Error ? err.message : String(err);
  if (err instanceof ConnectError) {
    // The gRPC status as the server sent it: its number, name and message.
    code = `gRPC ${err.code} ${grpcCodeName(err.code)}`;
    message = err.rawMessage || "(no message)";
  }
  $("error-code").textContent = `${context}: ${code}`;
  $("error-message").textContent = message;
  box.dataset.grpcCode = err instanceof ConnectError ? grpcCodeName(err.code) : "";
  box.hidden = false;
  console.error(context, err);
}

function clearError(): void {
  $("error").hidden = true;
}

// ---------- state ----------

let config: DemoConfig | null = null;
let client: Client<typeof PaymentsService> | null = null;
let userId = "";
let token = "";
/** Cancels the open WatchTransaction stream of each step. */
let topupAbort: AbortController | null = null;
let couponAbort: AbortController | null = null;

function requireClient(): Client<typeof PaymentsService> {
  if (!client) throw new Error("sign in first");
  return client;
}

const bearer: Interceptor = (next) => async (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

async function loadConfig(): Promise<DemoConfig> {
  const res = await fetch("/demo/config");
  if (!res.ok) throw new Error(`/demo/config answered ${res.status}`);
  return (await res.json()) as DemoConfig;
}

async function signIn(user: string): Promise<void> {
  const res = await fetch(`/demo/token?user=${encodeURIComponent(user)}`);
  if (!res.ok) throw new Error(`/demo/token answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { token: string };
  config ??= await loadConfig();
  // Streams watched for the previous user end with the switch.
  topupAbort?.abort();
  couponAbort?.abort();
  token = body.token;
  userId = user;
  client = createClient(
    PaymentsService,
    createGrpcWebTransport({ baseUrl: config.apiUrl, interceptors: [bearer] }),
  );
  const who = $("signed-in-as");
  who.textContent = `signed in as ${user}`;
  who.hidden = false;
  for (const id of ["topup", "apply-coupon", "refresh-wallet"]) button(id).disabled = false;
  await refreshWallet("after sign-in");
}

// ---------- wallet ----------

async function refreshWallet(why: string): Promise<void> {
  const wallet = await requireClient().getWallet({ userId });
  const el = $("wallet-balance");
  el.textContent = formatMoney(wallet.balance, wallet.currency);
  el.dataset.balance = wallet.balance.toString();
  el.dataset.currency = wallet.currency;
  $("wallet-note").textContent = `GetWallet ${why}, at ${new Date().toLocaleTimeString()}`;
}

// ---------- watching a transaction ----------

interface WatchView {
  list: HTMLElement;
  state: HTMLElement;
  result: HTMLElement;
}

function view(prefix: "topup" | "coupon"): WatchView {
  return {
    list: $(`${prefix}-statuses`),
    state: $(`${prefix}-stream-state`),
    result: $(`${prefix}-result`),
  };
}

function resetView(v: WatchView): void {
  v.list.replaceChildren();
  v.state.textContent = "";
  v.state.dataset.state = "";
  v.result.textContent = "";
  v.result.dataset.status = "";
}

function appendStatus(v: WatchView, tx: Transaction): void {
  const li = document.createElement("li");
  const name = statusName(tx.status);
  li.dataset.testid = "status-item";
  li.dataset.status = name;
  li.className = `status status-${name.toLowerCase()}`;
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = name;
  const meta = document.createElement("span");
  meta.className = "meta";
  const at = tx.updatedAt ? new Date(Number(tx.updatedAt.seconds) * 1000).toLocaleTimeString() : "";
  meta.textContent = `v${tx.version} · ${formatMoney(tx.amount, tx.currency)}${at ? ` · ${at}` : ""}`;
  li.append(badge, meta);
  if (tx.failureCode || tx.failureMessage) {
    const fail = document.createElement("span");
    fail.className = "failure";
    fail.textContent = [tx.failureCode, tx.failureMessage].filter(Boolean).join(": ");
    li.append(fail);
  }
  v.list.append(li);
}

function setStreamState(v: WatchView, state: "open" | "ended" | "error"): void {
  v.state.dataset.state = state;
  v.state.textContent = { open: "● live", ended: "ended", error: "broken" }[state];
}

/**
 * Streams a transaction until the server ends the stream (it does once the transaction
 * settles), showing each status as it arrives. Returns the last transaction seen.
 */
async function watch(
  v: WatchView,
  transactionId: string,
  signal: AbortSignal,
  onUpdate?: (tx: Transaction) => void,
): Promise<Transaction | undefined> {
  let last: Transaction | undefined;
  setStreamState(v, "open");
  try {
    for await (const update of requireClient().watchTransaction({ transactionId }, { signal })) {
      if (!update.transaction) continue;
      last = update.transaction;
      appendStatus(v, last);
      onUpdate?.(last);
    }
    setStreamState(v, "ended");
  } catch (err) {
    setStreamState(v, "error");
    throw err;
  }
  if (last) {
    const name = statusName(last.status);
    v.result.dataset.status = name;
    v.result.textContent = TERMINAL.has(last.status)
      ? `Settled: ${name}`
      : `Stream ended at ${name}`;
    v.result.className = `result result-${name.toLowerCase()}`;
  }
  return last;
}

// ---------- step 1: top up with a 3DS card ----------

let pending3ds: { paymentIntent: string; clientSecret: string } | null = null;

async function topUp(): Promise<void> {
  const api = requireClient();
  const amount = parseCents(input("topup-amount").value);
  if (amount === null || amount <= 0n) throw new Error("enter an amount such as 20.00");
  topupAbort?.abort();
  const abort = (topupAbort = new AbortController());
  const v = view("topup");
  resetView(v);
  $("challenge").hidden = true;
  pending3ds = null;

  const card = await api.attachPaymentMethod({ userId, paymentMethodId: TEST_CARD });
  const created = await api.createPayment({
    userId,
    paymentMethodId: card.id,
    amount,
    currency: "usd",
    idempotencyKey: crypto.randomUUID(),
  });
  const tx = created.transaction;
  if (!tx) throw new Error("CreatePayment returned no transaction");
  // The PaymentIntent id is also the prefix of its client secret (pi_…_secret_…).
  const paymentIntent =
    tx.stripePaymentIntentId || created.clientSecret.split("_secret_")[0] || "";
  $("topup-card-info").textContent = `${card.brand || "card"} •••• ${card.last4} (${card.id})`;
  $("topup-transaction-id").textContent = tx.id;
  $("topup-payment-intent").textContent = paymentIntent || "—";
  $("topup-facts").hidden = false;
  if (created.clientSecret && paymentIntent) {
    pending3ds = { paymentIntent, clientSecret: created.clientSecret };
  }

  const last = await watch(v, tx.id, abort.signal, (update) => {
    // The challenge is shown while the transaction waits for the customer.
    $("challenge").hidden = !(update.status === TransactionStatus.REQUIRES_ACTION && pending3ds);
  });
  $("challenge").hidden = true;
  if (last) await refreshWallet(`after the top-up settled (${statusName(last.status)})`);
}

/** Answers the 3DS challenge as stripe.confirmCardPayment would, on stripe-sim. */
async function answer3ds(outcome: "succeed" | "fail"): Promise<void> {
  if (!pending3ds || !config) throw new Error("no 3D Secure challenge is pending");
  const { paymentIntent, clientSecret } = pending3ds;
  for (const id of ["complete-3ds", "fail-3ds"]) button(id).disabled = true;
  try {
    const res = await fetch(
      `${config.stripeSimUrl}/test/payment_intents/${encodeURIComponent(paymentIntent)}/authenticate`,
      {
        method: "POST",
        body: new URLSearchParams({ outcome, client_secret: clientSecret }),
      },
    );
    if (!res.ok) throw new Error(`3DS authenticate answered ${res.status}: ${await res.text()}`);
    pending3ds = null;
    $("challenge").hidden = true;
  } finally {
    for (const id of ["complete-3ds", "fail-3ds"]) button(id).disabled = false;
  }
}

// ---------- step 2: apply a coupon ----------

async function applyCoupon(): Promise<void> {
  const api = requireClient();
  const code = input("coupon-code").value.trim();
  if (!code) throw new Error("enter a coupon code");
  couponAbort?.abort();
  const abort = (couponAbort = new AbortController());
  const v = view("coupon");
  resetView(v);
  const res = await api.applyCoupon({ userId, code, idempotencyKey: crypto.randomUUID() });
  if (!res.transaction) throw new Error("ApplyCoupon returned no transaction");
  const last = await watch(v, res.transaction.id, abort.signal);
  if (last) await refreshWallet(`after the coupon settled (${statusName(last.status)})`);
}

// ---------- wiring ----------

/** Runs an action from a button, disabling it meanwhile and showing any error. */
function action(context: string, btn: HTMLButtonElement, run: () => Promise<void>): void {
  clearError();
  btn.disabled = true;
  document.body.dataset.busy = String(Number(document.body.dataset.busy ?? "0") + 1);
  run()
    .catch((err: unknown) => {
      if (err instanceof ConnectError && err.code === Code.Canceled) return;
      showError(context, err);
    })
    .finally(() => {
      btn.disabled = false;
      document.body.dataset.busy = String(Number(document.body.dataset.busy) - 1);
    });
}

function main(): void {
  input("user-id").value = `demo-${crypto.randomUUID().slice(0, 8)}`;
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = input("user-id").value.trim();
    action("Sign in", button("sign-in"), () => signIn(user));
  });
  $("topup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    action("Top up", button("topup"), topUp);
  });
  $("coupon-form").addEventListener("submit", (e) => {
    e.preventDefault();
    action("Apply coupon", button("apply-coupon"), applyCoupon);
  });
  button("complete-3ds").addEventListener("click", () =>
    action("3D Secure", button("complete-3ds"), () => answer3ds("succeed")),
  );
  button("fail-3ds").addEventListener("click", () =>
    action("3D Secure", button("fail-3ds"), () => answer3ds("fail")),
  );
  button("refresh-wallet").addEventListener("click", () =>
    action("GetWallet", button("refresh-wallet"), () => refreshWallet("on request")),
  );
  button("error-dismiss").addEventListener("click", clearError);
  loadConfig()
    .then((c) => {
      config = c;
      document.body.dataset.ready = "true";
    })
    .catch((err: unknown) => showError("Loading /demo/config", err));
}

main();
