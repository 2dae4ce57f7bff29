// End to end: a fresh database, stripe-sim, webhook-ingestor and payments-api from
// target/debug/, the demo web server, and Debian's Chromium driven by playwright-core
// through the page's three steps (3DS top-up, coupon, wallet balance).
//
// Run from web/ after `npm run generate && npm run build`: `node --test e2e/`.
// Environment: DATABASE_URL (an admin connection; default
// postgres://postgres@127.0.0.1:5432/postgres), CARGO_TARGET_DIR, CHROMIUM_PATH
// (default /usr/bin/chromium), E2E_KEEP_LOGS=1 to print every service's log at the end.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, connect } from "node:net";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const webDir = resolve(here, "..");
const repoRoot = resolve(webDir, "..");
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(repoRoot, process.env.CARGO_TARGET_DIR) : join(repoRoot, "target");
const binDir = join(targetDir, "debug");
const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const adminUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";

const STRIPE_KEY = "sk_test_web_e2e";
const WEBHOOK_SECRET = `whsec_web_e2e_${randomBytes(8).toString("hex")}`;
const JWT_SECRET = `web-e2e-${randomBytes(16).toString("hex")}`;
const TOPUP_CENTS = 2000;
const COUPON_CENTS = 500;
const PROMO_CODE = "WELCOME5";

/** Everything started, stopped in reverse order by `after`. */
const cleanups = [];
const procs = [];
let failed = false;

// ---------- helpers ----------

function log(...args) {
  console.log("[e2e]", ...args);
}

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function psql(sql) {
  const out = spawnSync("psql", [adminUrl, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8" });
  if (out.error) throw new Error(`psql could not run: ${out.error.message}`);
  if (out.status !== 0) throw new Error(`psql ${JSON.stringify(sql)} failed: ${out.stderr}`);
  return out.stdout;
}

/** A child process whose output is kept (the tail is printed on failure). */
function start(name, command, args, env) {
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = { name, child, lines: [], exited: null };
  const keep = (chunk) => {
    for (const line of chunk.toString().split("\n")) {
      if (line.trim()) proc.lines.push(line);
    }
    if (proc.lines.length > 2000) proc.lines.splice(0, proc.lines.length - 2000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  proc.exitPromise = new Promise((r) =>
    child.on("exit", (code, signal) => {
      proc.exited = { code, signal };
      r(proc.exited);
    }),
  );
  procs.push(proc);
  cleanups.push(() => stop(proc));
  return proc;
}

async function stop(proc) {
  if (proc.exited) return;
  proc.child.kill("SIGTERM");
  const done = await Promise.race([proc.exitPromise, sleep(15_000).then(() => null)]);
  if (!done) {
    log(`${proc.name} did not stop after SIGTERM; killing it`);
    proc.child.kill("SIGKILL");
    await proc.exitPromise;
  }
}

function tail(proc, n = 60) {
  return proc.lines.slice(-n).map((l) => `  ${proc.name} | ${l}`).join("\n");
}

/** Waits until `check` resolves truthy, failing early if `proc` exits. */
async function waitUntil(what, check, { proc, timeoutMs = 60_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  while (Date.now() < deadline) {
    if (proc?.exited) {
      throw new Error(`${proc.name} exited (${JSON.stringify(proc.exited)}) while waiting for ${what}\n${tail(proc)}`);
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await sleep(150);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError.message}` : ""}`);
}

function tcpOpen(port) {
  return new Promise((r) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      r(true);
    });
    s.once("error", () => r(false));
  });
}

async function httpOk(url) {
  const res = await fetch(url);
  return res.ok;
}

async function stripePost(simUrl, path, form) {
  const res = await fetch(`${simUrl}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${STRIPE_KEY}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`stripe-sim ${path} answered ${res.status}: ${JSON.stringify(body)}`);
  return body;
}

function ensureBinaries() {
  const bins = ["stripe-sim", "webhook-ingestor", "payments-api"];
  if (bins.every((b) => existsSync(join(binDir, b)))) return;
  log("building the service binaries (cargo build)");
  const out = spawnSync("cargo", ["build", "-p", "payments-api", "-p", "webhook-ingestor", "-p", "stripe-sim"], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  if (out.status !== 0) throw new Error(`cargo build failed (${out.status ?? out.error})`);
}

// ---------- the environment ----------

const env = {};

before(
  async () => {
    try {
      await setUp();
    } catch (err) {
      failed = true;
      throw err;
    }
  },
  { timeout: 30 * 60_000 },
);

async function setUp() {
    ensureBinaries();
    assert.ok(existsSync(join(webDir, "dist", "index.html")), "dist/ is missing: run `npm run generate && npm run build` first");
    assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: apt-get install chromium`);

    // A fresh database, dropped at the end whatever happens.
    const dbName = `web_e2e_${Date.now()}_${randomBytes(4).toString("hex")}`;
    psql(`CREATE DATABASE ${dbName}`);
    cleanups.push(() => {
      psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      log(`dropped database ${dbName}`);
    });
    const dbUrl = new URL(adminUrl);
    dbUrl.pathname = `/${dbName}`;
    env.databaseUrl = dbUrl.toString();
    log(`created database ${dbName}`);

    const [simPort, ingestorPort, apiPort, webPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    env.simUrl = `http://127.0.0.1:${simPort}`;
    env.apiUrl = `http://127.0.0.1:${apiPort}`;
    env.webUrl = `http://127.0.0.1:${webPort}`;
    const common = {
      DATABASE_URL: env.databaseUrl,
      STRIPE_API_BASE: env.simUrl,
      STRIPE_SECRET_KEY: STRIPE_KEY,
      RUST_LOG: process.env.RUST_LOG || "info",
      NO_COLOR: "1",
    };

    const sim = start("stripe-sim", join(binDir, "stripe-sim"), [
      "--addr", `127.0.0.1:${simPort}`,
      "--webhook-url", `http://127.0.0.1:${ingestorPort}/v1/stripe-webhook`,
      "--webhook-secret", WEBHOOK_SECRET,
    ], { RUST_LOG: common.RUST_LOG, NO_COLOR: "1" });
    await waitUntil("stripe-sim /health", () => httpOk(`${env.simUrl}/health`), { proc: sim });

    // The ingestor applies the migrations; payments-api starts once it is ready.
    const ingestor = start("webhook-ingestor", join(binDir, "webhook-ingestor"), [], {
      ...common,
      INGESTOR_ADDR: `127.0.0.1:${ingestorPort}`,
      STRIPE_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    });
    await waitUntil("webhook-ingestor /readyz", () => httpOk(`http://127.0.0.1:${ingestorPort}/readyz`), { proc: ingestor });

    const api = start("payments-api", join(binDir, "payments-api"), [], {
      ...common,
      PAYMENTS_API_ADDR: `127.0.0.1:${apiPort}`,
      PAYMENTS_JWT_SECRET: JWT_SECRET,
      PAYMENTS_CORS_ORIGINS: env.webUrl,
    });
    await waitUntil("payments-api port", () => tcpOpen(apiPort), { proc: api });

    const web = start("web", process.execPath, [join(webDir, "server.mjs")], {
      WEB_ADDR: `127.0.0.1:${webPort}`,
      PAYMENTS_API_URL: env.apiUrl,
      STRIPE_SIM_URL: env.simUrl,
      PAYMENTS_JWT_SECRET: JWT_SECRET,
    });
    await waitUntil("web /demo/config", () => httpOk(`${env.webUrl}/demo/config`), { proc: web });

    // The promotion code the page will redeem.
    const coupon = await stripePost(env.simUrl, "/v1/coupons", { amount_off: String(COUPON_CENTS), currency: "usd" });
    await stripePost(env.simUrl, "/v1/promotion_codes", {
      "promotion[type]": "coupon",
      "promotion[coupon]": coupon.id,
      code: PROMO_CODE,
    });
    log(`coupon ${coupon.id} with promotion code ${PROMO_CODE}`);

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
    cleanups.push(() => env.browser.close());
}

after(
  async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        console.error("[e2e] cleanup failed:", err);
      }
    }
    if (failed || process.env.E2E_KEEP_LOGS) {
      for (const proc of procs) console.error(`--- ${proc.name} (last lines) ---\n${tail(proc, failed ? 80 : 2000)}`);
    }
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
    return {
      balance: q("wallet-balance")?.dataset.balance,
      topup: list("topup-statuses"),
      topupStream: q("topup-stream-state")?.dataset.state,
      coupon: list("coupon-statuses"),
      couponStream: q("coupon-stream-state")?.dataset.state,
      error: q("error")?.hidden ? null : q("error")?.textContent.replace(/\s+/g, " ").trim(),
    };
  });
  return JSON.stringify(state);
}

const statuses = (page, list) =>
  page.$$eval(`[data-testid="${list}"] li`, (items) => items.map((li) => li.dataset.status));

test("3DS top-up, coupon and wallet balance through the page", { timeout: 5 * 60_000 }, async () => {
  const page = await env.browser.newPage({ viewport: { width: 1200, height: 900 } });
  const console_ = [];
  page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => console_.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
  try {
    await page.goto(env.webUrl);
    await pageWait(page, "the page to load its config", () => document.body.dataset.ready === "true");

    // Sign in as a demo user; the empty wallet is read.
    const user = `e2e-${randomBytes(4).toString("hex")}`;
    await page.fill('[data-testid="user-id"]', user);
    await page.click('[data-testid="sign-in"]');
    await pageWait(page, "the initial wallet", () =>
      document.querySelector('[data-testid="wallet-balance"]').dataset.balance === "0",
    );
    assert.equal(await page.textContent('[data-testid="signed-in-as"]'), `signed in as ${user}`);

    // Step 1: top up with the 3DS card; the stream shows REQUIRES_ACTION live.
    await page.fill('[data-testid="topup-amount"]', (TOPUP_CENTS / 100).toFixed(2));
    await page.click('[data-testid="topup"]');
    await pageWait(page, "REQUIRES_ACTION in the top-up stream", () =>
      [...document.querySelectorAll('[data-testid="topup-statuses"] li')].some((li) => li.dataset.status === "REQUIRES_ACTION"),
    );
    assert.equal(await page.getAttribute('[data-testid="topup-stream-state"]', "data-state"), "open", "the stream is still open while 3DS is pending");
    await page.waitForSelector('[data-testid="complete-3ds"]', { state: "visible" });
    await page.screenshot({ path: join(here, "challenge.png"), fullPage: true });
    await page.click('[data-testid="complete-3ds"]');
    await pageWait(page, "the top-up to settle", () =>
      document.querySelector('[data-testid="topup-result"]').dataset.status === "SUCCEEDED",
    );
    const topup = await statuses(page, "topup-statuses");
    log("top-up stream:", topup.join(" → "));
    assert.ok(topup.indexOf("REQUIRES_ACTION") >= 0 && topup.indexOf("REQUIRES_ACTION") < topup.indexOf("SUCCEEDED"), `REQUIRES_ACTION before SUCCEEDED: ${topup}`);
    assert.equal(topup.at(-1), "SUCCEEDED");
    assert.equal(await page.getAttribute('[data-testid="topup-stream-state"]', "data-state"), "ended");
    await pageWait(page, "the wallet after the top-up", (want) =>
      document.querySelector('[data-testid="wallet-balance"]').dataset.balance === want, String(TOPUP_CENTS),
    );

    // Step 2: an unknown code is refused with a visible gRPC error, then the real coupon.
    await page.fill('[data-testid="coupon-code"]', "NOSUCHCODE");
    await page.click('[data-testid="apply-coupon"]');
    await page.waitForSelector('[data-testid="error"]', { state: "visible", timeout: 30_000 });
    await page.screenshot({ path: join(here, "error.png") });
    assert.equal(await page.getAttribute('[data-testid="error"]', "data-grpc-code"), "INVALID_ARGUMENT");
    const refusal = await page.textContent('[data-testid="error"]');
    log("unknown code:", refusal.replace(/\s+/g, " ").replace("×", "").trim());
    assert.match(refusal, /gRPC 3 INVALID_ARGUMENT/);
    assert.match(refusal, /NOSUCHCODE/);
    await page.fill('[data-testid="coupon-code"]', PROMO_CODE);
    await page.click('[data-testid="apply-coupon"]');
    await page.waitForSelector('[data-testid="error"]', { state: "hidden" });
    await pageWait(page, "the coupon to settle", () =>
      document.querySelector('[data-testid="coupon-result"]').dataset.status === "SUCCEEDED",
    );
    const coupon = await statuses(page, "coupon-statuses");
    log("coupon stream:", coupon.join(" → "));
    assert.equal(coupon.at(-1), "SUCCEEDED");

    // Step 3: the balance the page shows is the top-up plus the coupon.
    const total = TOPUP_CENTS + COUPON_CENTS;
    await pageWait(page, "the wallet after the coupon", (want) =>
      document.querySelector('[data-testid="wallet-balance"]').dataset.balance === want, String(total),
    );
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
