#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a number of seconds each (first argument, else
# FUZZ_SECONDS, else 60), after installing cargo-fuzz if missing and seeding the event
# corpora with the recorded events in testdata/. Crashes are written to
# fuzz/artifacts/<target>/; the script exits non-zero if any target found one.
#
# cargo-fuzz passes nightly-only flags to rustc; RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them. fuzz/ is a workspace of its own with its own target/, so a
# fuzz build never waits on (or invalidates) the main workspace's.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-60}}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/fuzz/target"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

for target in stripe_event stripe_event_json; do
    mkdir -p "fuzz/corpus/$target"
    cp testdata/stripe-events/*.json "fuzz/corpus/$target/"
done

failed=()
for target in $(cargo fuzz list); do
    options=(-max_total_time="$seconds" -print_final_stats=1)
    case "$target" in
        signature_header) options+=(-dict=fuzz/signature_header.dict) ;;
        stripe_event*) options+=(-dict=fuzz/stripe_event.dict) ;;
    esac
    echo "== $target for ${seconds}s"
    if ! cargo fuzz run "$target" -- "${options[@]}"; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzzing found failures in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
