// The real system for the JavaScript tests (clients/typescript, web/e2e): a fresh
// database, then stripe-sim, webhook-ingestor and payments-api from target/debug/, each on
// a free port and waited for. payments-api can be restarted on the same port, as a deploy
// does, to test what clients do with an interrupted stream.
//
// Plain Node, no dependencies. Environment: DATABASE_URL (an admin connection; default
// postgres://postgres@127.0.0.1:5432/postgres), CARGO_TARGET_DIR, RUST_LOG.

import { spawn, spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { connect, createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const targetDir = process.env.CARGO_TARGET_DIR
  ? resolve(repoRoot, process.env.CARGO_TARGET_DIR)
  : join(repoRoot, "target");
const binDir = join(targetDir, "debug");
const adminUrl = process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
const STRIPE_KEY = "sk_test_js_tests";

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function freePort() {
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

/** Runs one SQL statement as the admin connection (or `url`); the rows as text lines. */
export function psql(sql, url = adminUrl) {
  const out = spawnSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql], { encoding: "utf8" });
  if (out.error) throw new Error(`psql could not run: ${out.error.message}`);
  if (out.status !== 0) throw new Error(`psql ${JSON.stringify(sql)} failed: ${out.stderr}`);
  return out.stdout;
}

/** A child process whose output is kept (its tail is shown when something fails). */
export function startProcess(name, command, args, env, cwd = repoRoot) {
  const child = spawn(command, args, {
    cwd,
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
  return proc;
}

/** SIGTERM (a graceful stop), then SIGKILL after `graceMs`. */
export async function stopProcess(proc, graceMs = 15_000) {
  if (proc.exited) return proc.exited;
  proc.child.kill("SIGTERM");
  const done = await Promise.race([proc.exitPromise, sleep(graceMs).then(() => null)]);
  if (done) return done;
  console.error(`[stack] ${proc.name} did not stop after SIGTERM; killing it`);
  proc.child.kill("SIGKILL");
  return proc.exitPromise;
}

export function tail(proc, n = 60) {
  return proc.lines.slice(-n).map((l) => `  ${proc.name} | ${l}`).join("\n");
}

/** Waits until `check` resolves truthy, failing early if `proc` exits. */
export async function waitUntil(what, check, { proc, timeoutMs = 60_000 } = {}) {
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
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${lastError.message}` : ""}`);
}

export function tcpOpen(port) {
  return new Promise((r) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      r(true);
    });
    s.once("error", () => r(false));
  });
}

export async function httpOk(url) {
  const res = await fetch(url);
  return res.ok;
}

/** An HS256 JWT as payments-api verifies it: `sub` = the user, valid for an hour. */
export function userToken(user, secret) {
  const b64 = (data) => Buffer.from(data).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const header = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = b64(JSON.stringify({ sub: user, iat: now, exp: now + 3600 }));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

function ensureBinaries() {
  const bins = ["stripe-sim", "webhook-ingestor", "payments-api"];
  if (bins.every((b) => existsSync(join(binDir, b)))) return;
  console.error("[stack] building the service binaries (cargo build)");
  const out = spawnSync("cargo", ["build", "-p", "payments-api", "-p", "webhook-ingestor", "-p", "stripe-sim"], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  if (out.status !== 0) throw new Error(`cargo build failed (${out.status ?? out.error})`);
}

/**
 * Starts the stack. `corsOrigin` is the page origin payments-api lets use grpc-web (the
 * web demo's); `name` prefixes the database. Returns the URLs, the processes, and
 * `restartApi()` / `stop()`.
 */
export async function startStack({ name = "js", corsOrigin } = {}) {
  ensureBinaries();
  const stack = {
    procs: [],
    jwtSecret: `js-tests-${randomBytes(16).toString("hex")}`,
    webhookSecret: `whsec_js_${randomBytes(8).toString("hex")}`,
    stripeKey: STRIPE_KEY,
  };
  const cleanups = [];
  stack.stop = async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        console.error("[stack] cleanup failed:", err);
      }
    }
  };
  try {
    const dbName = `${name}_${Date.now()}_${randomBytes(4).toString("hex")}`;
    psql(`CREATE DATABASE ${dbName}`);
    cleanups.push(() => psql(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
    const dbUrl = new URL(adminUrl);
    dbUrl.pathname = `/${dbName}`;
    stack.databaseUrl = dbUrl.toString();

    const [simPort, ingestorPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    stack.simUrl = `http://127.0.0.1:${simPort}`;
    stack.apiPort = apiPort;
    stack.apiUrl = `http://127.0.0.1:${apiPort}`;
    const common = {
      DATABASE_URL: stack.databaseUrl,
      STRIPE_API_BASE: stack.simUrl,
      STRIPE_SECRET_KEY: STRIPE_KEY,
      RUST_LOG: process.env.RUST_LOG || "info",
      NO_COLOR: "1",
    };
    const track = (proc) => {
      stack.procs.push(proc);
      cleanups.push(() => stopProcess(proc));
      return proc;
    };

    const sim = track(
      startProcess("stripe-sim", join(binDir, "stripe-sim"), [
        "--addr", `127.0.0.1:${simPort}`,
        "--webhook-url", `http://127.0.0.1:${ingestorPort}/v1/stripe-webhook`,
        "--webhook-secret", stack.webhookSecret,
      ], { RUST_LOG: common.RUST_LOG, NO_COLOR: "1" }),
    );
    await waitUntil("stripe-sim /health", () => httpOk(`${stack.simUrl}/health`), { proc: sim });

    // The ingestor applies the migrations; payments-api starts once it is ready.
    const ingestor = track(
      startProcess("webhook-ingestor", join(binDir, "webhook-ingestor"), [], {
        ...common,
        INGESTOR_ADDR: `127.0.0.1:${ingestorPort}`,
        STRIPE_WEBHOOK_SECRETS: stack.webhookSecret,
      }),
    );
    await waitUntil("webhook-ingestor /readyz", () => httpOk(`http://127.0.0.1:${ingestorPort}/readyz`), { proc: ingestor });

    const apiEnv = {
      ...common,
      PAYMENTS_API_ADDR: `127.0.0.1:${apiPort}`,
      PAYMENTS_METRICS_ADDR: "127.0.0.1:0",
      PAYMENTS_ADMIN_ADDR: "127.0.0.1:0",
      PAYMENTS_JWT_SECRET: stack.jwtSecret,
      PAYMENTS_DRAIN_TIMEOUT_SECS: "5",
      ...(corsOrigin ? { PAYMENTS_CORS_ORIGINS: corsOrigin } : {}),
    };
    let generation = 0;
    const startApi = async () => {
      generation += 1;
      const api = track(startProcess(`payments-api#${generation}`, join(binDir, "payments-api"), [], apiEnv));
      stack.api = api;
      await waitUntil("payments-api port", () => tcpOpen(apiPort), { proc: api });
      return api;
    };
    await startApi();

    /**
     * Stops payments-api as a deploy does (SIGTERM: open streams end with UNAVAILABLE),
     * or crashes it with `signal: "SIGKILL"`, then starts a new one on the same port.
     * `whileDown` runs between the two.
     */
    stack.restartApi = async ({ signal = "SIGTERM", whileDown } = {}) => {
      const old = stack.api;
      if (signal === "SIGTERM") await stopProcess(old);
      else {
        old.child.kill(signal);
        await old.exitPromise;
      }
      await whileDown?.();
      return startApi();
    };
    stack.logs = (n = 80) => stack.procs.map((p) => `--- ${p.name} ---\n${tail(p, n)}`).join("\n");
    stack.stripeGet = async (path) => {
      const res = await fetch(`${stack.simUrl}${path}`, { headers: { authorization: `Bearer ${STRIPE_KEY}` } });
      const body = await res.json();
      if (!res.ok) throw new Error(`stripe-sim GET ${path} answered ${res.status}: ${JSON.stringify(body)}`);
      return body;
    };
    stack.stripePost = async (path, form) => {
      const res = await fetch(`${stack.simUrl}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${STRIPE_KEY}`, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`stripe-sim POST ${path} answered ${res.status}: ${JSON.stringify(body)}`);
      return body;
    };
    /** Completes (or fails) a PaymentIntent's 3DS challenge, as stripe.js would. */
    stack.authenticate3ds = async (paymentIntent, clientSecret, outcome = "succeed") => {
      const res = await fetch(`${stack.simUrl}/test/payment_intents/${encodeURIComponent(paymentIntent)}/authenticate`, {
        method: "POST",
        body: new URLSearchParams({ outcome, client_secret: clientSecret }),
      });
      if (!res.ok) throw new Error(`3DS authenticate answered ${res.status}: ${await res.text()}`);
    };
    /** A coupon of `cents` and a promotion code for it. */
    stack.createPromotionCode = async (code, cents) => {
      const coupon = await stack.stripePost("/v1/coupons", { amount_off: String(cents), currency: "usd" });
      await stack.stripePost("/v1/promotion_codes", {
        "promotion[type]": "coupon",
        "promotion[coupon]": coupon.id,
        code,
      });
      return coupon.id;
    };
    /** The PaymentIntents Stripe holds for the customer of `paymentIntent`. */
    stack.customerPaymentIntents = async (paymentIntent) => {
      const pi = await stack.stripeGet(`/v1/payment_intents/${paymentIntent}`);
      const list = await stack.stripeGet(`/v1/payment_intents?customer=${pi.customer}&limit=100`);
      return list.data;
    };
    /** Rows of this stack's database. */
    stack.sql = (sql) => psql(sql, stack.databaseUrl);
    stack.token = (user) => userToken(user, stack.jwtSecret);
    return stack;
  } catch (err) {
    for (const proc of stack.procs) console.error(`--- ${proc.name} ---\n${tail(proc)}`);
    await stack.stop();
    throw err;
  }
}
