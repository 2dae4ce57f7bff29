#!/usr/bin/env node
// Development/demo server for the wallet page. NOT FOR PRODUCTION.
//
// It serves the built page from dist/ and two demo endpoints:
//   GET /demo/token?user=ID  an HS256 JWT {sub: ID, exp: now + DEMO_TOKEN_TTL_SECS} signed
//                            with PAYMENTS_JWT_SECRET: anyone who can reach this server can
//                            act as any user, which is why it listens on loopback by default
//                            and must never run next to a real deployment.
//   GET /demo/config         {apiUrl, stripeSimUrl} for the page.
//
// Environment:
//   PAYMENTS_JWT_SECRET  the secret payments-api verifies tokens with (default "dev-secret-at-least-32-bytes-long")
//   PAYMENTS_API_URL     where the browser reaches payments-api's grpc-web (default http://127.0.0.1:50051)
//   STRIPE_SIM_URL       where the browser reaches stripe-sim (default http://127.0.0.1:12111)
//   WEB_ADDR             host:port to listen on (default 127.0.0.1:5173; port 0 picks a free one)
//   DEMO_TOKEN_TTL_SECS  token lifetime (default 3600)
// Plain Node, no dependencies: `npm run build && node server.mjs`.

import { createHmac } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const distDir = join(here, "dist");

const env = process.env;
const jwtSecret = env.PAYMENTS_JWT_SECRET || "dev-secret-at-least-32-bytes-long";
const apiUrl = (env.PAYMENTS_API_URL || "http://127.0.0.1:50051").replace(/\/+$/, "");
const stripeSimUrl = (env.STRIPE_SIM_URL || "http://127.0.0.1:12111").replace(/\/+$/, "");
const tokenTtl = Number(env.DEMO_TOKEN_TTL_SECS || 3600);
const [host, portText] = splitAddr(env.WEB_ADDR || "127.0.0.1:5173");

const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
};

function splitAddr(addr) {
  const i = addr.lastIndexOf(":");
  if (i < 0) return ["127.0.0.1", addr];
  return [addr.slice(0, i).replace(/^\[|\]$/g, ""), addr.slice(i + 1)];
}

function base64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 JWT, as payments-api verifies it (sub and exp required). */
function signJwt(claims, secret) {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = base64url(JSON.stringify(claims));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

function sendJson(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

async function serveFile(res, pathname) {
  const rel = normalize(decodeURIComponent(pathname)).replace(/^(\.\.(\/|\\|$))+/, "");
  let file = join(distDir, rel);
  if (file !== distDir && !file.startsWith(distDir + sep)) return sendJson(res, 403, { error: "forbidden" });
  let info = await stat(file).catch(() => null);
  if (info?.isDirectory()) {
    file = join(file, "index.html");
    info = await stat(file).catch(() => null);
  }
  if (!info) {
    // Unknown paths get the page itself; a missing build says so.
    file = join(distDir, "index.html");
    info = await stat(file).catch(() => null);
    if (!info) return sendJson(res, 503, { error: "dist/index.html missing: run `npm run generate && npm run build`" });
  }
  const immutable = file.includes(`${sep}assets${sep}`);
  res.writeHead(200, {
    "content-type": types[extname(file)] || "application/octet-stream",
    "content-length": info.size,
    "cache-control": immutable ? "public, max-age=31536000, immutable" : "no-cache",
  });
  createReadStream(file).pipe(res);
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url || "/", "http://localhost");
    if (req.method !== "GET" && req.method !== "HEAD") return sendJson(res, 405, { error: "method not allowed" });
    if (url.pathname === "/demo/config") {
      return sendJson(res, 200, { apiUrl, stripeSimUrl });
    }
    if (url.pathname === "/demo/token") {
      const user = (url.searchParams.get("user") || "").trim();
      if (!user || user.length > 128 || /[\u0000-\u001f\u007f]/.test(user)) {
        return sendJson(res, 400, { error: "?user= must be 1 to 128 printable characters" });
      }
      const now = Math.floor(Date.now() / 1000);
      const token = signJwt({ sub: user, iat: now, exp: now + tokenTtl }, jwtSecret);
      return sendJson(res, 200, { token, user, expiresAt: now + tokenTtl });
    }
    return await serveFile(res, url.pathname);
  } catch (err) {
    console.error(err);
    if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
    else res.destroy();
  }
});

server.listen(Number(portText), host, () => {
  const { address, port } = server.address();
  const shown = address.includes(":") ? `[${address}]` : address;
  // The test harness reads this line to learn the port.
  console.log(`demo web server listening on http://${shown}:${port} (api ${apiUrl}, stripe-sim ${stripeSimUrl}) - dev only, mints tokens for any user`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
