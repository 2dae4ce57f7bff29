#!/usr/bin/env bash
# Sourced by the JavaScript test scripts (clients/typescript/run-tests.sh, web/run-e2e.sh),
# which start the real services through scripts/stack.mjs: a PostgreSQL server at
# DATABASE_URL (scripts/ensure-postgres.sh) and psql, Node.js with the npm workspaces
# installed (scripts/ensure-node.sh), and the service binaries in target/debug (cargo build,
# a no-op when up to date). Run as root or with sudo; only the Debian, npm and crates
# registries are needed. Defines `apt_install PACKAGE...` for the callers.
# shellcheck shell=bash

js_stack_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js_stack_sudo=()
[ "$(id -u)" -ne 0 ] && js_stack_sudo=(sudo)
js_stack_apt_updated=false

apt_install() {
  if [ "$js_stack_apt_updated" = false ]; then
    "${js_stack_sudo[@]}" apt-get update -qq
    js_stack_apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive "${js_stack_sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

cd "$js_stack_root"
# shellcheck source=ensure-postgres.sh
source scripts/ensure-postgres.sh
if ! command -v psql >/dev/null 2>&1; then
  echo "installing the PostgreSQL client" >&2
  apt_install postgresql-client
fi
# shellcheck source=ensure-node.sh
source scripts/ensure-node.sh
cargo build -p payments-api -p webhook-ingestor -p stripe-sim
