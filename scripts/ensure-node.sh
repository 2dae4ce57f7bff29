#!/usr/bin/env bash
# Sourced by the scripts that need the npm workspaces (clients/typescript, web): checks
# Node.js 20.19+ and installs the root package-lock.json with `npm ci` when node_modules is
# missing or older than the lock. Only the npm registry is needed.
# shellcheck shell=bash

ensure_node_modules() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if ! command -v node >/dev/null 2>&1; then
    echo "node is not installed; Node.js 20.19+ and npm are required" >&2
    return 1
  fi
  # vite 8 and vitest 4 need 20.19 or newer.
  if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    echo "Node.js $(node --version) is too old; 20.19+ is required" >&2
    return 1
  fi
  if [ ! -f "$root/node_modules/.package-lock.json" ] \
    || [ "$root/package-lock.json" -nt "$root/node_modules/.package-lock.json" ]; then
    (cd "$root" && npm ci --no-audit --no-fund)
  fi
}

ensure_node_modules
