#!/usr/bin/env bash
# The TypeScript client's tests from a fresh clone (part of scripts/test.sh):
#   1. what they need: PostgreSQL and psql, the npm workspaces (npm ci), the service
#      binaries (../../scripts/ensure-js-stack.sh);
#   2. the package: generated code (buf generate) and tsc to dist/ (ESM + declarations);
#   3. vitest against a real payments-api, webhook-ingestor and stripe-sim (test/);
#   4. the packed tarball, installed into a scratch project and imported (pack-check.sh).
set -euo pipefail
pkg_dir="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../../scripts/ensure-js-stack.sh
source "$pkg_dir/../../scripts/ensure-js-stack.sh"

cd "$pkg_dir"
npm run build
npx tsc --noEmit
npx vitest run
bash pack-check.sh
