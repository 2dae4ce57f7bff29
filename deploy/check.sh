#!/usr/bin/env bash
# Offline checks of everything under deploy/: no network, no Docker engine, no
# Kubernetes cluster. Each check whose tool is missing is reported as SKIP; the
# script exits non-zero when any check that ran failed (and, with
# DEPLOY_CHECK_STRICT=1, when any check was skipped).
#
#   bash deploy/check.sh
#
#  1. kustomize render of deploy/k8s/base and of every deploy/k8s/overlays/*
#     (`kubectl kustomize`, else `kustomize build`);
#  2. schema validation of each render against the Kubernetes API schemas
#     (kubernetes-validate --strict, for K8S_VERSION, default 1.30.0, the oldest
#     version the manifests support);
#  3. consistency of each render (tools/k8s_check.py: references, probes, security
#     context, resources, grace periods, no inlined Secret);
#  4. the Compose file (check-compose.sh: `docker compose config -q` when
#     available, and tools/compose_check.py);
#  5. the variables given to each binary against its source (tools/env_check.py);
#  6. the OpenTelemetry collector configuration (tools/otel_check.py);
#  7. hadolint on deploy/Dockerfile; 8. shellcheck on deploy/*.sh;
#  9. monitoring: tools/monitoring_check.py (the PrometheusRule matches
#     prometheus/alerts.yml, every alert has its RUNBOOK.md section, every metric
#     queried is documented and registered, ServiceMonitors select Services with the
#     ports they scrape), then promtool: `check config` of prometheus/prometheus.yml
#     (which checks the rules), and `test rules` of prometheus/alerts.test.yml.
#     promtool is installed from Debian's `prometheus` package when it is missing
#     (as root, or with sudo; DEPLOY_CHECK_NO_INSTALL=1 skips instead): these rules
#     page people, so CI never skips them silently.
#
# `kubectl apply --dry-run=client` is not used: it needs a cluster to discover
# the API.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
k8s_version="${K8S_VERSION:-1.30.0}"
strict="${DEPLOY_CHECK_STRICT:-0}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

passed=()
failed=()
skipped=()
pass() { passed+=("$1"); echo "ok    $1"; }
fail() { failed+=("$1"); echo "FAIL  $1"; }
skip() { skipped+=("$1: $2"); echo "SKIP  $1 ($2)"; }

# Runs "$@", then records the outcome under $1's label; exit 3 from our tools
# means "could not check" (PyYAML missing).
run() {
  local label=$1
  shift
  local status=0
  "$@" || status=$?
  case "$status" in
    0) pass "$label" ;;
    3) skip "$label" "a tool it needs is missing" ;;
    *) fail "$label" ;;
  esac
}

have() { command -v "$1" >/dev/null 2>&1; }

python_ok=0
if have python3 && python3 -c 'import yaml' 2>/dev/null; then python_ok=1; fi

# --- 1. kustomize render ---------------------------------------------------
kustomize_cmd=()
if have kubectl && kubectl kustomize --help >/dev/null 2>&1; then
  kustomize_cmd=(kubectl kustomize)
elif have kustomize; then
  kustomize_cmd=(kustomize build)
fi

rendered=()
targets=("$here/k8s/base")
for overlay in "$here"/k8s/overlays/*/; do
  [ -f "$overlay/kustomization.yaml" ] && targets+=("${overlay%/}")
done
if [ ${#kustomize_cmd[@]} -eq 0 ]; then
  skip "kustomize render" "neither kubectl nor kustomize is installed"
else
  for target in "${targets[@]}"; do
    name=${target#"$here/k8s/"}
    out="$work/$(echo "$name" | tr / -).yaml"
    if "${kustomize_cmd[@]}" "$target" >"$out" 2>"$out.err"; then
      pass "render $name (${kustomize_cmd[*]}, $(grep -c '^kind:' "$out") objects)"
      rendered+=("$out")
    else
      cat "$out.err"
      fail "render $name"
    fi
  done
fi

# --- 2. Kubernetes schema ----------------------------------------------------
if [ ${#rendered[@]} -eq 0 ]; then
  skip "kubernetes schema" "nothing rendered"
elif have kubernetes-validate; then
  for out in "${rendered[@]}"; do
    run "kubernetes schema $(basename "$out" .yaml) (strict, $k8s_version)" \
      kubernetes-validate --strict --quiet --kubernetes-version "$k8s_version" "$out"
  done
else
  skip "kubernetes schema" "kubernetes-validate is not installed (pip install kubernetes-validate)"
fi

# --- 3. consistency of the renders -------------------------------------------
if [ ${#rendered[@]} -eq 0 ]; then
  skip "k8s consistency" "nothing rendered"
elif [ "$python_ok" = 1 ]; then
  run "k8s consistency" python3 "$here/tools/k8s_check.py" "${rendered[@]}"
else
  skip "k8s consistency" "python3 with PyYAML is not available"
fi

# --- 4. Compose ----------------------------------------------------------------
run "compose" bash "$here/check-compose.sh"

# --- 5. variables against the sources -----------------------------------------
if [ "$python_ok" = 1 ]; then
  if [ ${#rendered[@]} -eq 0 ]; then
    skip "variables (k8s part)" "nothing rendered"
  fi
  run "variables read by the binaries" python3 "$here/tools/env_check.py" "$root" "$here/docker-compose.yml" "${rendered[@]}"
  run "otel collector config" python3 "$here/tools/otel_check.py" "$here/otel-collector.yaml"
else
  skip "variables, otel collector config" "python3 with PyYAML is not available"
fi

# --- 7. hadolint -----------------------------------------------------------------
if have hadolint; then
  run "hadolint deploy/Dockerfile" hadolint "$here/Dockerfile"
else
  skip "hadolint" "not installed"
fi

# --- 8. shellcheck ---------------------------------------------------------------
if have shellcheck; then
  run "shellcheck deploy/*.sh" shellcheck "$here"/*.sh
else
  skip "shellcheck" "not installed"
fi

# --- 9. monitoring ----------------------------------------------------------------
if [ "$python_ok" = 1 ]; then
  run "monitoring files consistent" python3 "$here/tools/monitoring_check.py" "$root" "${rendered[@]}"
else
  skip "monitoring files consistent" "python3 with PyYAML is not available"
fi
if ! have promtool && [ "${DEPLOY_CHECK_NO_INSTALL:-0}" != 1 ]; then
  sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  echo "installing Debian's prometheus package (for promtool)"
  "${sudo[@]}" apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null ||
    echo "could not install the prometheus package"
fi
if have promtool; then
  run "promtool check config (and rules)" promtool check config "$here/prometheus/prometheus.yml"
  run "promtool test rules" promtool test rules "$here/prometheus/alerts.test.yml"
elif [ "${DEPLOY_CHECK_NO_INSTALL:-0}" = 1 ]; then
  skip "promtool" "not installed (DEPLOY_CHECK_NO_INSTALL=1)"
else
  fail "promtool (not installed and could not be installed)"
fi

echo
echo "deploy: ${#passed[@]} passed, ${#failed[@]} failed, ${#skipped[@]} skipped"
for s in "${skipped[@]}"; do echo "  skipped: $s"; done
if [ ${#failed[@]} -gt 0 ]; then
  for f in "${failed[@]}"; do echo "  failed: $f"; done
  exit 1
fi
if [ ${#skipped[@]} -gt 0 ] && [ "$strict" = 1 ]; then
  echo "DEPLOY_CHECK_STRICT=1: a check was skipped"
  exit 1
fi
exit 0
