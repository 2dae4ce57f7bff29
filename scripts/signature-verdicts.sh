#!/usr/bin/env bash
# Regenerates testdata/stripe-signatures/verdicts.json: how Stripe's official libraries
# (stripe-python's WebhookSignature.verify_header, stripe-node's
# webhooks.signature.verifyHeader) judge each Stripe-Signature header form of
# scripts/signature-verdicts/forms.py. webhook-ingestor's signature tests assert it agrees.
#
# Both libraries, pinned below, are installed into target/signature-verdicts/ (once; later
# runs are offline). `--check` regenerates into target/ and fails if the committed fixture
# differs, instead of overwriting it; the test command runs it so (about 20 s from a clean
# clone, 1 s once installed). Needs python3 with pip (the check is skipped, as deploy's
# compose check is, where there is no python3), and node with npm.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1; then
  if [ "${1:-}" = "--check" ]; then
    echo "signature verdicts: SKIP (python3 not found)"
    exit 0
  fi
  echo "python3 is needed to run stripe-python" >&2
  exit 1
fi

PYTHON_STRIPE=16.1.0
NODE_STRIPE=23.2.0
work=target/signature-verdicts
fixture=testdata/stripe-signatures/verdicts.json

mkdir -p "$work/node"
if [ ! -f "$work/py/stripe-$PYTHON_STRIPE.dist-info/METADATA" ]; then
  rm -rf "$work/py"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --target "$work/py" "stripe==$PYTHON_STRIPE"
fi
if ! grep -q "\"version\": \"$NODE_STRIPE\"" "$work/node/node_modules/stripe/package.json" 2>/dev/null; then
  # A package.json of its own, so npm does not install into the repository's workspace.
  echo '{"private": true}' >"$work/node/package.json"
  (cd "$work/node" && npm install --silent --no-audit --no-fund --no-package-lock "stripe@$NODE_STRIPE")
fi

PYTHONPATH="$work/py" python3 scripts/signature-verdicts/forms.py >"$work/python.json"
out="$fixture"
if [ "${1:-}" = "--check" ]; then
  out="$work/verdicts.json"
fi
STRIPE_NODE="$PWD/$work/node/node_modules/stripe" \
  node scripts/signature-verdicts/node-verdicts.cjs "$work/python.json" "$out"

if [ "${1:-}" = "--check" ]; then
  if ! diff -u "$fixture" "$out"; then
    echo "signature verdicts: $fixture is not what the pinned libraries say; run scripts/signature-verdicts.sh" >&2
    exit 1
  fi
  echo "signature verdicts: $fixture matches stripe-python $PYTHON_STRIPE and stripe-node $NODE_STRIPE"
fi
