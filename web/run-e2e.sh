#!/usr/bin/env bash
# The browser end-to-end test of the wallet demo, from a fresh Debian machine with the
# Rust toolchain and Node.js 20.19+ (run as root, or with sudo available):
#   1. installs what is missing: Debian's chromium, the PostgreSQL client/server
#      (through ../scripts/ensure-postgres.sh), the npm packages (npm ci);
#   2. builds the services (cargo build, a no-op when up to date), the generated
#      TypeScript (npm run generate) and the page (npm run build);
#   3. runs web/e2e/ with node's test runner.
# Only the Debian, npm and crates registries are needed.
set -euo pipefail
web_dir="$(cd "$(dirname "$0")" && pwd)"
repo_dir="$(dirname "$web_dir")"

sudo=()
[ "$(id -u)" -ne 0 ] && sudo=(sudo)
apt_updated=false
apt_install() {
  if [ "$apt_updated" = false ]; then
    "${sudo[@]}" apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

# Node.js: vite 8 needs 20.19 or newer.
if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed; Node.js 20.19+ and npm are required" >&2
  exit 1
fi
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "Node.js $(node --version) is too old; 20.19+ is required" >&2
  exit 1
fi

# The browser.
: "${CHROMIUM_PATH:=/usr/bin/chromium}"
export CHROMIUM_PATH
if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "installing Debian's chromium" >&2
  apt_install chromium
fi

# PostgreSQL (an admin connection in DATABASE_URL; the test creates and drops its own
# database) and psql, which the test uses for that.
cd "$repo_dir"
# shellcheck source=../scripts/ensure-postgres.sh
source scripts/ensure-postgres.sh
if ! command -v psql >/dev/null 2>&1; then
  echo "installing the PostgreSQL client" >&2
  apt_install postgresql-client
fi

# The services the test starts from target/debug/.
cargo build -p payments-api -p webhook-ingestor -p stripe-sim

# The page.
cd "$web_dir"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run generate
npm run build

node --test e2e/
