#!/usr/bin/env bash
# Validates deploy/docker-compose.yml against an env file (deploy/.env.example by
# default) without starting anything and without network access.
#
#   deploy/check-compose.sh [ENV_FILE]
#
# 1. `docker compose config -q`, when a Compose implementation is installed.
# 2. tools/compose_check.py (python3 + PyYAML): interpolation, structure, build
#    targets, depends_on, health checks, and the Compose JSON schema when
#    check-jsonschema is installed. It always runs when it can: it checks things
#    `docker compose config` does not (Dockerfile stages, bind-mounted files).
#
# Exit status: 0 when every check that ran passed (a skipped one is reported as
# SKIP); 1 on a failure; 3 when nothing could be checked on this machine. With
# DEPLOY_CHECK_STRICT=1 any skip is a failure (1).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
compose="$here/docker-compose.yml"
env_file="${1:-$here/.env.example}"
strict="${DEPLOY_CHECK_STRICT:-0}"
ran=0
skipped=0

if docker compose version >/dev/null 2>&1; then
  docker compose -f "$compose" --env-file "$env_file" config -q
  echo "compose: docker compose config -q passed ($(docker compose version --short 2>/dev/null || echo unknown version))"
  ran=1
else
  echo "compose: SKIP docker compose config (no Compose implementation installed)"
  skipped=1
fi

if command -v python3 >/dev/null 2>&1; then
  status=0
  python3 "$here/tools/compose_check.py" "$compose" "$env_file" || status=$?
  case "$status" in
    0) ran=1 ;;
    3) skipped=1 ;; # PyYAML missing; the script said so
    *) exit 1 ;;
  esac
else
  echo "compose: SKIP structural check (python3 not found)"
  skipped=1
fi

if [ "$ran" = 0 ]; then
  echo "compose: nothing could be checked on this machine"
  [ "$strict" = 1 ] && exit 1
  exit 3
fi
if [ "$skipped" = 1 ] && [ "$strict" = 1 ]; then
  echo "compose: DEPLOY_CHECK_STRICT=1 and a check was skipped"
  exit 1
fi
exit 0
