#!/usr/bin/env bash
# The wire contract's guard: `buf lint` (STANDARD, see proto/buf.yaml) and `buf breaking`
# (FILE rules) of proto/ against the contract this work started from. buf comes from the
# npm registry (@bufbuild/buf, a dev dependency of clients/typescript).
#
# What "against main" means here, so that it is meaningful on a branch and harmless on main:
#   - on a branch with commits of its own: the merge base with `main` (or `origin/main`),
#     i.e. main's contract as the branch last took it in;
#   - on main itself (a fresh clone in CI has `main` checked out): the newest commit that
#     changed proto/payments/ is compared with its parent, so the latest contract change
#     that landed is checked again rather than main against itself;
#   - BUF_BREAKING_AGAINST=<commit> compares with that commit instead.
# Without the history to do either (a shallow clone), the breaking check says so and
# is skipped; lint always runs. A deliberate breaking change belongs in a new package
# (payments.v2), not in an exception here.
set -euo pipefail
repo_dir="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo_dir"
# shellcheck source=ensure-node.sh
source scripts/ensure-node.sh
buf="$repo_dir/node_modules/.bin/buf"

"$buf" lint proto
echo "buf lint: the contract follows STANDARD (exceptions: proto/buf.yaml)"

commit() { git rev-parse -q --verify "$1^{commit}" 2>/dev/null; }

against="${BUF_BREAKING_AGAINST:-}"
why="BUF_BREAKING_AGAINST"
if [ -z "$against" ]; then
  main_ref=""
  for ref in main origin/main; do
    if commit "$ref" >/dev/null; then main_ref="$ref"; break; fi
  done
  head="$(commit HEAD || true)"
  fork=""
  [ -n "$main_ref" ] && [ -n "$head" ] && fork="$(git merge-base HEAD "$main_ref" 2>/dev/null || true)"
  if [ -n "$fork" ] && [ "$fork" != "$head" ]; then
    against="$fork"
    why="the merge base with $main_ref"
  elif [ -n "$head" ]; then
    last="$(git log -1 --format=%H -- proto/payments 2>/dev/null || true)"
    if [ -n "$last" ] && parent="$(commit "$last^")"; then
      against="$parent"
      why="the parent of the newest contract change ($(git log -1 --format=%h "$last"))"
    fi
  fi
fi
if [ -z "$against" ]; then
  echo "buf breaking: SKIPPED (no main branch or history to compare with; set BUF_BREAKING_AGAINST)" >&2
  exit 0
fi

base="$(mktemp -d)"
trap 'rm -rf "$base"' EXIT
git archive "$against" proto/payments | tar -x -C "$base"
"$buf" breaking proto --against "$base/proto"
echo "buf breaking: no breaking change against $(git log -1 --format=%h "$against") ($why)"
