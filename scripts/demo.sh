#!/usr/bin/env bash
# Runs the whole system locally and plays the scripted demo: PostgreSQL (started if
# none answers), stripe-sim, webhook-ingestor and payments-api, then a card top-up
# with 3DS, a coupon and a card validation, printing each WatchTransaction stream live.
# Everything started here is stopped on exit; the demo database is dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-postgres.sh

cargo build --quiet -p stripe-sim -p webhook-ingestor -p payments-api -p payments-cli
bin=target/debug
logs=target/demo
mkdir -p "$logs"

db="payments_demo_$$"
server_url=$DATABASE_URL
psql_admin() { psql "$server_url" -qtAc "$1" >/dev/null; }
if command -v psql >/dev/null 2>&1; then
  psql_admin "CREATE DATABASE $db"
else
  echo "psql is needed to create the demo database" >&2
  exit 1
fi
export DATABASE_URL="${server_url%/*}/$db"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
}
trap cleanup EXIT

wait_for() { # URL-or-host:port, what
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$2 did not start; see $logs/" >&2
  exit 1
}

export STRIPE_SECRET_KEY=sk_test_demo STRIPE_API_BASE=http://127.0.0.1:12111
export STRIPE_WEBHOOK_SECRETS=whsec_demo PAYMENTS_JWT_SECRET=demo-secret-not-for-production-use
export INGESTOR_ADDR=127.0.0.1:8080 PAYMENTS_API_ADDR=127.0.0.1:50051 PAYMENTS_ADMIN_ADDR=127.0.0.1:50052

"$bin/stripe-sim" --addr 127.0.0.1:12111 --webhook-url http://127.0.0.1:8080/v1/stripe-webhook \
  --webhook-secret whsec_demo --seed "$$" >"$logs/stripe-sim.log" 2>&1 &
pids+=($!)
"$bin/payments-api" migrate >"$logs/migrate.log" 2>&1
"$bin/webhook-ingestor" >"$logs/webhook-ingestor.log" 2>&1 &
pids+=($!)
"$bin/payments-api" >"$logs/payments-api.log" 2>&1 &
pids+=($!)
wait_for 12111 stripe-sim
wait_for 8080 webhook-ingestor
wait_for 50051 payments-api

"$bin/payments-cli" --api http://127.0.0.1:50051 --jwt-secret "$PAYMENTS_JWT_SECRET" demo --sim http://127.0.0.1:12111
echo
echo "logs: $logs/"
