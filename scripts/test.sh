#!/usr/bin/env bash
# The test command: the deployment files' offline checks, the contract's lint and breaking
# check, formatting, lints, then every test of the workspace against a real PostgreSQL
# (started if none answers) and the in-process stripe-sim.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-postgres.sh

bash deploy/check.sh
# The wire contract: buf lint and buf breaking against main's contract.
bash scripts/check-contract.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The TypeScript client package against the real services, then the web demo built on it in
# headless Chromium.
bash clients/typescript/run-tests.sh
bash web/run-e2e.sh
