// End to end: the real services (scripts/stack.mjs: a fresh database, stripe-sim,
// webhook-ingestor and payments-api from target/debug/), the demo web server, and Debian's
// Chromium driven by playwright-core through the page's flows, all on @payments/client:
// a 3DS top-up whose stream survives a payments-api restart, a coupon (between an unknown
// code and a second redemption, both refused with their ErrorInfo reason), a card
// validation that starts the trial, and a double-clicked top-up that makes one payment.
//
// Run from web/ after building @payments/client and the page: `node --test e2e/`.
// Environment: DATABASE_URL (an admin connection; default
// postgres://postgres@127.0.0.1:5432/postgres), CARGO_TARGET_DIR, CHROMIUM_PATH
// (default /usr/bin/chromium), E2E_KEEP_LOGS=1 to print every service's log at the end.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { freePort, httpOk, startProcess, startStack, stopProcess, tail, waitUntil } from "../../scripts/stack.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, "..");
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const TOPUP_CENTS = 2000;
const COUPON_CENTS = 500;
const TRIAL_CENTS = 500; // payments-api's default PAYMENTS_TRIAL_CREDIT
const DOUBLE_CLICK_CENTS = 1000;
const PROMO_CODE = "WELCOME5";

const env = {};
let failed = false;

function log(...args) {
  console.log("[e2e]", ...args);
}

before(
  async () => {
    try {
      assert.ok(existsSync(join(webDir, "dist", "index.html")), "dist/ is missing: build @payments/client, then `npm run build`");
      assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: apt-get install chromium`);
      const webPort = await freePort();
      env.webUrl = `http://127.0.0.1:${webPort}`;
      env.stack = await startStack({ name: "web_e2e", corsOrigin: env.webUrl });
      env.web = startProcess("web", process.execPath, [join(webDir, "server.mjs")], {
        WEB_ADDR: `127.0.0.1:${webPort}`,
        PAYMENTS_API_URL: env.stack.apiUrl,
        STRIPE_SIM_URL: env.stack.simUrl,
        PAYMENTS_JWT_SECRET: env.stack.jwtSecret,
      });
      await waitUntil("web /demo/config", () => httpOk(`${env.webUrl}/demo/config`), { proc: env.web });
      await env.stack.createPromotionCode(PROMO_CODE, COUPON_CENTS);
      env.browser = await chromium.launch({
        executablePath: chromiumPath,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-quic",
          "--no-first-run",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
    } catch (err) {
      failed = true;
      throw err;
    }
  },
  { timeout: 30 * 60_000 },
);

after(
  async () => {
    await env.browser?.close().catch((err) => console.error("[e2e] closing the browser:", err));
    if (env.web) await stopProcess(env.web);
    if (env.stack && (failed || process.env.E2E_KEEP_LOGS)) {
      console.error(env.stack.logs(failed ? 80 : 2000));
      if (env.web) console.error(tail(env.web));
    }
    await env.stack?.stop();
  },
  { timeout: 120_000 },
);

// ---------- the page ----------

/** Waits for `predicate` in the page; fails at once with the page's error if it shows one. */
async function pageWait(page, what, predicate, arg, timeout = 45_000) {
  const handle = await page
    .waitForFunction(
      ([source, a]) => {
        const err = document.querySelector('[data-testid="error"]');
        if (err && !err.hidden) return { error: err.textContent.replace(/\s+/g, " ").replace("×", "").trim() };
        // eslint-disable-next-line no-new-func
        return new Function("arg", `return (${source})(arg)`)(a) ? { ok: true } : false;
      },
      [predicate.toString(), arg],
      { timeout, polling: 100 },
    )
    .catch(async (err) => {
      const seen = await pageState(page).catch(() => "(page state unavailable)");
      throw new Error(`waiting for ${what}: ${err.message.split("\n")[0]}\npage state: ${seen}`);
    });
  const result = await handle.jsonValue();
  if (result.error) throw new Error(`the page shows an error while waiting for ${what}: ${result.error}`);
}

/** What the page shows, for failure messages. */
async function pageState(page) {
  const state = await page.evaluate(() => {
    const q = (id) => document.querySelector(`[data-testid="${id}"]`);
    const list = (id) => [...document.querySelectorAll(`[data-testid="${id}"] li`)].map((li) => li.dataset.status);
    const flows = {};
    for (const flow of ["topup", "coupon", "trial"]) {
      flows[flow] = { statuses: list(`${flow}-statuses`), stream: q(`${flow}-stream-state`)?.dataset.state };
    }
    return {
      balance: q("wallet-balance")?.dataset.balance,
      trial: q("wallet-trial")?.dataset.state,
      ...flows,
      error: q("error")?.hidden ? null : q("error")?.textContent.replace(/\s+/g, " ").trim(),
    };
  });
  return JSON.stringify(state);
}

const statuses = (page, flow) =>
  page.$$eval(`[data-testid="${flow}-statuses"] li`, (items) => items.map((li) => li.dataset.status));

const balanceIs = (page, what, cents) =>
  pageWait(page, what, (want) => document.querySelector('[data-testid="wallet-balance"]')?.dataset.balance === want, String(cents));

test("3DS top-up across a payments-api restart, coupon, trial, and a double click that pays once", { timeout: 5 * 60_000 }, async () => {
  const { stack } = env;
  const page = await env.browser.newPage({ viewport: { width: 1200, height: 1000 } });
  const console_ = [];
  page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => console_.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  let createPaymentCalls = 0;
  page.on("request", (r) => {
    if (r.url().endsWith("/payments.v1.PaymentsService/CreatePayment")) createPaymentCalls += 1;
  });
  try {
    await page.goto(env.webUrl);
    await pageWait(page, "the page to load its config", () => document.body.dataset.ready === "true");

    // Sign in as a demo user; the empty wallet is read.
    const user = `e2e-${randomBytes(4).toString("hex")}`;
    await page.fill('[data-testid="user-id"]', user);
    await page.click('[data-testid="sign-in"]');
    await balanceIs(page, "the initial wallet", 0);
    assert.equal(await page.textContent('[data-testid="signed-in-as"]'), `signed in as ${user}`);

    // 1. Top up with the 3DS card; the stream shows REQUIRES_ACTION live.
    await page.fill('[data-testid="topup-amount"]', (TOPUP_CENTS / 100).toFixed(2));
    await page.click('[data-testid="topup"]');
    await pageWait(page, "REQUIRES_ACTION in the top-up stream", () =>
      [...document.querySelectorAll('[data-testid="topup-statuses"] li')].some((li) => li.dataset.status === "REQUIRES_ACTION"),
    );
    assert.equal(await page.getAttribute('[data-testid="topup-stream-state"]', "data-state"), "open", "the stream is open while 3DS is pending");
    await page.waitForSelector('[data-testid="complete-3ds"]', { state: "visible" });

    // A deploy while the customer is at the bank's challenge: payments-api stops (its
    // streams end with UNAVAILABLE) and a new one starts on the same port. The page
    // reconnects by itself.
    await stack.restartApi();
    await pageWait(page, "the top-up stream to reconnect", () => {
      const state = document.querySelector('[data-testid="topup-stream-state"]');
      return Number(state.dataset.reconnects) >= 1 && state.dataset.state === "open";
    });
    await page.screenshot({ path: join(here, "challenge.png"), fullPage: true });
    await page.click('[data-testid="complete-3ds"]');
    await pageWait(page, "the top-up to settle", () =>
      document.querySelector('[data-testid="topup-result"]')?.dataset.status === "SUCCEEDED",
    );
    const topup = await statuses(page, "topup");
    log("top-up stream:", topup.join(" → "));
    assert.deepEqual(topup.slice(-2), ["REQUIRES_ACTION", "SUCCEEDED"], "each version once, in order, across the restart");
    assert.equal(await page.getAttribute('[data-testid="topup-stream-state"]', "data-state"), "ended");
    await balanceIs(page, "the wallet after the top-up", TOPUP_CENTS);

    // 2. An unknown code is refused with a visible gRPC error, then the real coupon.
    await page.fill('[data-testid="coupon-code"]', "NOSUCHCODE");
    await page.click('[data-testid="apply-coupon"]');
    await page.waitForSelector('[data-testid="error"]', { state: "visible", timeout: 30_000 });
    await page.screenshot({ path: join(here, "error.png") });
    assert.equal(await page.getAttribute('[data-testid="error"]', "data-grpc-code"), "INVALID_ARGUMENT");
    assert.equal(await page.getAttribute('[data-testid="error"]', "data-reason"), "COUPON_NOT_FOUND");
    const refusal = await page.textContent('[data-testid="error"]');
    log("unknown code:", refusal.replace(/\s+/g, " ").replace("×", "").trim());
    assert.match(refusal, /gRPC 3 INVALID_ARGUMENT/);
    assert.match(refusal, /NOSUCHCODE/);
    await page.fill('[data-testid="coupon-code"]', PROMO_CODE);
    await page.click('[data-testid="apply-coupon"]');
    await page.waitForSelector('[data-testid="error"]', { state: "hidden" });
    await pageWait(page, "the coupon to settle", () =>
      document.querySelector('[data-testid="coupon-result"]')?.dataset.status === "SUCCEEDED",
    );
    assert.equal((await statuses(page, "coupon")).at(-1), "SUCCEEDED");
    await balanceIs(page, "the wallet after the coupon", TOPUP_CENTS + COUPON_CENTS);
    // The same code again is a new intent (the first settled), which the server refuses
    // with its ErrorInfo reason.
    await page.click('[data-testid="apply-coupon"]');
    await page.waitForSelector('[data-testid="error"]', { state: "visible", timeout: 30_000 });
    assert.equal(await page.getAttribute('[data-testid="error"]', "data-grpc-code"), "ALREADY_EXISTS");
    assert.equal(await page.getAttribute('[data-testid="error"]', "data-reason"), "COUPON_ALREADY_REDEEMED");
    await page.click('[data-testid="error-dismiss"]');
    await balanceIs(page, "the wallet after the refused second redemption", TOPUP_CENTS + COUPON_CENTS);

    // 3. Card validation that starts the trial: its credit lands in the wallet.
    await page.click('[data-testid="start-trial"]');
    await pageWait(page, "the trial's card validation to settle", () =>
      document.querySelector('[data-testid="trial-result"]')?.dataset.status === "SUCCEEDED",
    );
    log("trial stream:", (await statuses(page, "trial")).join(" → "));
    await pageWait(page, "the trial to be active", () => document.querySelector('[data-testid="wallet-trial"]')?.dataset.state === "ACTIVE");
    await balanceIs(page, "the wallet after the trial", TOPUP_CENTS + COUPON_CENTS + TRIAL_CENTS);

    // 4. A double click on "Top up" (a card without 3DS) makes one payment: one
    //    transaction, one PaymentIntent at Stripe, one credit.
    await page.selectOption('[data-testid="topup-card-select"]', "pm_card_visa");
    await page.fill('[data-testid="topup-amount"]', (DOUBLE_CLICK_CENTS / 100).toFixed(2));
    const callsBefore = createPaymentCalls;
    await page.dblclick('[data-testid="topup"]');
    await pageWait(page, "the double-clicked top-up to settle", (want) => {
      const result = document.querySelector('[data-testid="topup-result"]')?.dataset.status;
      const amount = document.querySelector('[data-testid="topup-statuses"] li:last-child .meta')?.textContent ?? "";
      return result === "SUCCEEDED" && amount.includes(want);
    }, `$${(DOUBLE_CLICK_CENTS / 100).toFixed(2)}`);
    const rows = stack
      .sql(`SELECT id, stripe_payment_intent_id FROM transactions WHERE user_id = '${user}' AND kind = 'payment' AND amount = ${DOUBLE_CLICK_CENTS}`)
      .trim()
      .split("\n")
      .filter(Boolean);
    assert.equal(rows.length, 1, `one transaction for the double click: ${rows}`);
    const [txId, paymentIntent] = rows[0].split("|");
    assert.equal(await page.textContent('[data-testid="topup-transaction-id"]'), txId);
    const intents = (await stack.customerPaymentIntents(paymentIntent)).filter((pi) => pi.amount === DOUBLE_CLICK_CENTS);
    assert.deepEqual(intents.map((pi) => pi.id), [paymentIntent], "one PaymentIntent at Stripe");
    log(`double click: ${createPaymentCalls - callsBefore} CreatePayment request(s), one transaction ${txId}, one PaymentIntent ${paymentIntent}`);
    const total = TOPUP_CENTS + COUPON_CENTS + TRIAL_CENTS + DOUBLE_CLICK_CENTS;
    await balanceIs(page, "the wallet after the double click", total);
    assert.equal(await page.textContent('[data-testid="wallet-balance"]'), `$${(total / 100).toFixed(2)}`);
    assert.equal(await page.isVisible('[data-testid="error"]'), false, "no error is shown");

    await page.screenshot({ path: join(here, "demo.png"), fullPage: true });
    log(`screenshot: ${join(here, "demo.png")}`);
  } catch (err) {
    failed = true;
    await page.screenshot({ path: join(here, "failure.png"), fullPage: true }).catch(() => {});
    console.error(`--- browser console ---\n${console_.join("\n")}`);
    throw err;
  } finally {
    await page.close();
  }
});
