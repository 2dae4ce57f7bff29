#!/usr/bin/env bash
# Builds the services and the benchmark in release mode, then runs the benchmark.
# Arguments are passed on: bench/run.sh --quick, bench/run.sh --help.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p payments-bench -p payments-api -p webhook-ingestor -p stripe-sim
exec target/release/payments-bench --no-build "$@"
