#!/usr/bin/env bash
# The main command: builds the canister wasm and the local runner, then runs the narrated
# LiVault journey on the real wasm in a fresh state directory. Every step checks its answers;
# the script exits non-zero if any step differs from what is expected.
#
#   scripts/demo.sh                 # state in a temp dir, removed afterwards
#   scripts/demo.sh --keep DIR      # keep the state in DIR (must not exist) to explore after:
#                                   #   target/debug/livault-local --state DIR call --as alice get_vault '(1)'
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=""
if [ "${1:-}" = "--keep" ]; then
  KEEP="${2:?--keep needs a directory}"
  if [ -e "$KEEP" ]; then echo "error: $KEEP exists; pick a fresh directory" >&2; exit 2; fi
fi

echo "==> build the canister wasm"
scripts/build.sh
echo "==> build livault-local"
cargo build --quiet --locked -p livault_local --bin livault-local

if [ -n "$KEEP" ]; then
  STATE="$KEEP"
else
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  STATE="$TMP/state"
fi

echo "==> demo"
target/debug/livault-local --state "$STATE" demo --wasm target/livault/livault_backend.wasm
if [ -z "$KEEP" ]; then
  echo "(scripts/demo.sh removes its temporary state; run it with --keep DIR to explore it afterwards)"
fi
