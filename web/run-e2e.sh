#!/usr/bin/env bash
# The browser end-to-end test of the wallet demo, from a fresh Debian machine with the
# Rust toolchain and Node.js 20.19+ (run as root, or with sudo available):
#   1. installs what is missing: PostgreSQL and psql, the npm workspaces (npm ci), the
#      service binaries (../scripts/ensure-js-stack.sh), and Debian's chromium;
#   2. builds @payments/client (the page's client) and the page (npm run build);
#   3. runs web/e2e/ with node's test runner.
# Only the Debian, npm and crates registries are needed.
set -euo pipefail
web_dir="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../scripts/ensure-js-stack.sh
source "$web_dir/../scripts/ensure-js-stack.sh"

# The browser.
: "${CHROMIUM_PATH:=/usr/bin/chromium}"
export CHROMIUM_PATH
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "installing Debian's chromium" >&2
  apt_install chromium
fi

# The page, on the package it imports.
npm run build --workspace @payments/client
cd "$web_dir"
npm run build

node --test e2e/
