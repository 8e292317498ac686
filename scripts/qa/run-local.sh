#!/usr/bin/env bash
# Runs the QA happy path (scripts/qa/happy_path.sh) on the local runner: builds livault-local
# (debug, fast to build), installs target/livault/livault_backend.wasm (build it with
# scripts/build.sh) into a fresh temporary state directory as identity "default" (which
# becomes admin), then runs happy_path.sh with BACKEND=local. Fails if any expectation fails.
#
#   scripts/qa/run-local.sh icp   runs the script's BACKEND=icp lines instead, with
#                                 scripts/qa/icp-on-local.sh standing in for icp-cli
set -euo pipefail
cd "$(dirname "$0")/../.."

WASM="${LIVAULT_WASM:-target/livault/livault_backend.wasm}"
if [ ! -f "$WASM" ]; then
  echo "error: $WASM not found; run scripts/build.sh first" >&2
  exit 1
fi
cargo build --quiet --locked -p livault_local --bin livault-local

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export LIVAULT_LOCAL="$(pwd)/target/debug/livault-local --state $TMP/state"
$LIVAULT_LOCAL install --wasm "$WASM" --argument '(null)'
case "${1:-local}" in
  local) BACKEND=local scripts/qa/happy_path.sh ;;
  icp) ICP="$(pwd)/scripts/qa/icp-on-local.sh" ADVANCE_CLOCK="$LIVAULT_LOCAL time advance" \
         BACKEND=icp scripts/qa/happy_path.sh ;;
  *) echo "usage: $0 [local|icp]" >&2; exit 2 ;;
esac
